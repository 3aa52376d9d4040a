/* SPDX-License-Identifier: MIT */
/*
 * What earlier processes of this user mapped through the library, so a later one can list and delete it.
 * UPnP names a mapping by external port and protocol and lets any process of the host delete it (`upnpc -a`,
 * then `upnpc -d` in another process); PCP names it by internal port and nonce. The nonce is derived
 * (pmc_nonce()), so the internal port and client are all a later process needs: each mapping leaves one small
 * file in a directory private to the user, named by network namespace, protocol and external port. A record
 * is a hint, never a proof: deleting still takes the gateway's confirmation, and a record past its grant is
 * dropped.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "records.h"

#define RECORD_DIR_NAME "pcpmap-miniupnpc"

/* The directory: PCPMAP_COMPAT_STATE_DIR, else the user's runtime directory, else one in /tmp owned by the
 * user; it must be ours and closed to others. */
static int record_dir(char *buf, size_t len)
{
	const char *s = getenv("PCPMAP_COMPAT_STATE_DIR");
	const char *x = getenv("XDG_RUNTIME_DIR");
	char run[64];
	int n;
	snprintf(run, sizeof(run), "/run/user/%u", (unsigned)getuid());
	if (s && *s)
		n = snprintf(buf, len, "%s", s);
	else if (x && *x == '/')
		n = snprintf(buf, len, "%s/" RECORD_DIR_NAME, x);
	else if (access(run, W_OK) == 0)
		n = snprintf(buf, len, "%s/" RECORD_DIR_NAME, run);
	else
		n = snprintf(buf, len, "/tmp/" RECORD_DIR_NAME "-%u", (unsigned)getuid());
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -errno;
	struct stat st;
	if (lstat(buf, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 0022))
		return -EPERM;
	return 0;
}

/* Mappings live in a network namespace: a record of another namespace means nothing here. */
static unsigned long long netns_id(void)
{
	struct stat st;
	return stat("/proc/self/ns/net", &st) == 0 ? (unsigned long long)st.st_ino : 0;
}

static int record_path(char *buf, size_t len, uint8_t ip_proto, uint16_t ext_port)
{
	char dir[256];
	int r = record_dir(dir, sizeof(dir));
	if (r < 0)
		return r;
	int n =
	    snprintf(buf, len, "%s/%llu-%s-%u", dir, netns_id(), ip_proto == 17 ? "UDP" : "TCP", ext_port);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int pmc_upc_record_put(const struct upc_record *rec)
{
	char path[320], tmp[340];
	int r = record_path(path, sizeof(path), rec->ip_proto, rec->ext_port);
	if (r < 0)
		return r;
	snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid());
	FILE *f = fopen(tmp, "we");
	if (!f)
		return -errno;
	/* One line; the description, which may hold spaces, last. */
	fprintf(f, "1 %u %d %lld %u %s %s\n%s\n", rec->int_port, rec->third_party, (long long)rec->expires,
		rec->lease, rec->int_client, rec->gateway[0] ? rec->gateway : "-", rec->desc);
	if (fclose(f) != 0 || rename(tmp, path) < 0) {
		r = -errno;
		unlink(tmp);
		return r;
	}
	return 0;
}

static int record_read(const char *path, uint8_t ip_proto, uint16_t ext_port, struct upc_record *ret)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	struct upc_record rec;
	memset(&rec, 0, sizeof(rec));
	unsigned ver, in, lease;
	int tp;
	long long exp;
	char line[512];
	int ok = fscanf(f, "%u %u %d %lld %u %47s %63s", &ver, &in, &tp, &exp, &lease, rec.int_client,
			rec.gateway) == 7 &&
		 ver == 1 && in > 0 && in < 65536;
	/* The rest of the first line, then the description line. */
	if (ok && fgets(line, sizeof(line), f) && fgets(line, sizeof(line), f)) {
		size_t l = strcspn(line, "\n");
		if (l >= sizeof(rec.desc))
			l = sizeof(rec.desc) - 1;
		memcpy(rec.desc, line, l);
		rec.desc[l] = '\0';
	}
	fclose(f);
	if (!ok)
		return -EBADMSG;
	if (!strcmp(rec.gateway, "-"))
		rec.gateway[0] = '\0';
	rec.ip_proto = ip_proto;
	rec.ext_port = ext_port;
	rec.int_port = (uint16_t)in;
	rec.third_party = tp != 0;
	rec.expires = (time_t)exp;
	rec.lease = lease;
	*ret = rec;
	return 0;
}

int pmc_upc_record_get(uint8_t ip_proto, uint16_t ext_port, struct upc_record *ret)
{
	char path[320];
	int r = record_path(path, sizeof(path), ip_proto, ext_port);
	if (r < 0)
		return r;
	r = record_read(path, ip_proto, ext_port, ret);
	if (r == 0 && ret->expires <= time(NULL)) {
		unlink(path); /* the gateway has let it go */
		return -ENOENT;
	}
	return r == -EBADMSG ? -ENOENT : r;
}

void pmc_upc_record_del(uint8_t ip_proto, uint16_t ext_port)
{
	char path[320];
	if (record_path(path, sizeof(path), ip_proto, ext_port) == 0)
		unlink(path);
}

int pmc_upc_record_list(struct upc_record **ret, size_t *ret_n)
{
	char dir[256], prefix[32], path[600];
	int r = record_dir(dir, sizeof(dir));
	if (r < 0)
		return r;
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	snprintf(prefix, sizeof(prefix), "%llu-", netns_id());
	struct upc_record *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	time_t now = time(NULL);
	while ((de = readdir(d))) {
		char proto[4];
		unsigned port;
		char tail;
		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0 ||
		    sscanf(de->d_name + strlen(prefix), "%3[A-Z]-%u%c", proto, &port, &tail) != 2 || !port ||
		    port > 65535 || (strcmp(proto, "TCP") && strcmp(proto, "UDP")))
			continue;
		struct upc_record rec;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (record_read(path, strcmp(proto, "UDP") ? 6 : 17, (uint16_t)port, &rec) < 0)
			continue;
		if (rec.expires <= now) {
			unlink(path);
			continue;
		}
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 8;
			struct upc_record *nv = realloc(v, nc * sizeof(*nv));
			if (!nv) {
				closedir(d);
				free(v);
				return -ENOMEM;
			}
			v = nv;
			cap = nc;
		}
		v[n++] = rec;
	}
	closedir(d);
	*ret = v;
	*ret_n = n;
	return 0;
}
