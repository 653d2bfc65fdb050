//! Mount namespaces: the mount tree of a dumped namespace and what its
//! mounts hold ([`tmpfs`]: the contents of every tmpfs, as CRIU keeps them).

pub mod tmpfs;
