//! ptrace injection (the compel part): to be written.
