/*
 * hostport: "HOST:PORT", "[V6]:PORT" or ":PORT" (every address), as
 * -o metrics= takes it. Pure: no lookup, no socket.
 */
#ifndef GCSMOUNT_HOSTPORT_H
#define GCSMOUNT_HOSTPORT_H

#include <stddef.h>

/* Split s into host ("" for every address) and a port of 1 to 65535.
 * 0, or -EINVAL with one line in err naming "metrics=S". */
int hostport_split(const char *s, char *host, size_t hostlen, char *port, size_t portlen,
		   char *err, size_t errlen);

#endif
