//! ptrace: to be written.
