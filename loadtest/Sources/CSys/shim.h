#ifndef LOADTEST_CSYS_SHIM_H
#define LOADTEST_CSYS_SHIM_H
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* memmem is declared only under _GNU_SOURCE, which the Glibc module is not built with */
extern void *memmem(const void *haystack, size_t haystacklen, const void *needle, size_t needlelen);

static inline const void *lt_memmem(const void *h, size_t hl, const void *n, size_t nl)
{
	return memmem(h, hl, n, nl);
}

/* stdout/stderr are mutable globals to Swift 6 */
static inline void lt_flush_stdout(void) { fflush(stdout); }
static inline void lt_write_stderr(const char *s) { fputs(s, stderr); fflush(stderr); }

#endif
