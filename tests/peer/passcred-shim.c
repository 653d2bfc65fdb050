/*
 * Preloaded into the CRIU 4.1.1 peer by tests/crossover.rs where the kernel
 * (6.16 and later) answers SO_PASSCRED and SO_PASSSEC of an inet socket with
 * EOPNOTSUPP: CRIU 4.1.1 reads both options of every socket and fails its
 * dump on that (CRIU 4.2 reads them for unix and netlink sockets only). The
 * shim answers those two reads as older kernels did for an inet socket
 * (off), so that the peer can dump the inet test programs here. Nothing
 * else changes.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	static int (*real)(int, int, int, void *, socklen_t *);
	int r;

	if (!real)
		real = (int (*)(int, int, int, void *, socklen_t *))dlsym(RTLD_NEXT, "getsockopt");
	r = real(fd, level, name, val, len);
	if (r < 0 && errno == EOPNOTSUPP && level == SOL_SOCKET &&
	    (name == SO_PASSCRED || name == SO_PASSSEC) && val && len) {
		memset(val, 0, *len);
		return 0;
	}
	return r;
}
