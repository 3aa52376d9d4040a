/* The client: configuration, servers, the event loop glue (one epoll fd, one scheduler) and the callback
 * queue. The library never owns the loop: the application polls get_fd() until get_timeout() and calls
 * process(). */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "gwcache.h"
#include "internal.h"
#include "text/text.h"

struct pm_watch {
	struct pm_watch *next;
	struct pm_server *server;             /* a backend socket, or */
	void (*fn)(pcpmap_client *c, int fd); /* a client-level one (listeners, netlink) */
	int fd;
};

static uint64_t real_now_us(void *ctx)
{
	(void)ctx;
	return pcpmap_now_usec();
}

static void real_fill(void *ctx, void *buf, size_t len)
{
	(void)ctx;
	uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* getrandom cannot fail once the pool is initialised; abort rather than emit a
			 * guessable nonce. */
			abort();
		}
		p += n;
		len -= (size_t)n;
	}
}

void pm_log(const pcpmap_client *c, enum pcpmap_log_level level, const char *fmt, ...)
{
	if (!c->cfg.log || level > c->cfg.log_level)
		return;
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	c->cfg.log(c->cfg.log_userdata, level, buf);
}

void pm_trace(const pcpmap_client *c, bool sent, enum pcpmap_proto proto, const char *peer,
	      const uint8_t *bytes, size_t len, const char *decoded)
{
	if (c->cfg.trace)
		c->cfg.trace(c->cfg.trace_userdata, sent, proto, peer, bytes, len, decoded);
}

/* The struct as the first ABI published it (up to remap_max_in_flight): what binaries that call the unsized
 * pcpmap_client_config_init() symbol hold. */
#define PM_CONFIG_SIZE_V0 offsetof(struct pcpmap_client_config, cache_dir)

PCPMAP_EXPORT void pcpmap_client_config_init_sized(struct pcpmap_client_config *cfg, size_t size)
{
	if (!cfg || size < offsetof(struct pcpmap_client_config, trace_userdata) + sizeof(void *))
		return;
	if (size > sizeof(*cfg))
		size = sizeof(*cfg);
	memset(cfg, 0, size);
	cfg->size = size;
	cfg->log_level = PCPMAP_LOG_INFO;
}

PCPMAP_EXPORT void(pcpmap_client_config_init)(struct pcpmap_client_config *cfg)
{
	pcpmap_client_config_init_sized(cfg, PM_CONFIG_SIZE_V0);
}

/* "a.b.c.d", "a.b.c.d:port", "v6", "[v6]:port", "fe80::1%eth0". */
static void announce_timer(struct sched_timer *t, uint64_t now, void *arg);

int pm_parse_server(const char *s, struct pm_sockaddr *ret)
{
	char host[128];
	uint16_t port = PCP_SERVER_PORT;
	const char *colon = strchr(s, ':');

	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (!end || (size_t)(end - s - 1) >= sizeof(host))
			return -EINVAL;
		memcpy(host, s + 1, (size_t)(end - s - 1));
		host[end - s - 1] = '\0';
		if (end[1] == ':') {
			char *e;
			unsigned long p = strtoul(end + 2, &e, 10);
			if (*e || p == 0 || p > 65535)
				return -EINVAL;
			port = (uint16_t)p;
		} else if (end[1]) {
			return -EINVAL;
		}
	} else if (colon && !strchr(colon + 1, ':')) {
		if ((size_t)(colon - s) >= sizeof(host))
			return -EINVAL;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = '\0';
		char *e;
		unsigned long p = strtoul(colon + 1, &e, 10);
		if (*e || p == 0 || p > 65535)
			return -EINVAL;
		port = (uint16_t)p;
	} else {
		if (strlen(s) >= sizeof(host))
			return -EINVAL;
		strcpy(host, s);
	}
	return pm_sockaddr_set(ret, host, port);
}

int pm_client_new_env(pcpmap_client **ret, const struct pcpmap_client_config *cfg, const struct pm_env *env)
{
	struct pcpmap_client_config def;
	int r;

	if (!ret)
		return -EINVAL;
	if (!cfg) {
		pcpmap_client_config_init(&def);
		cfg = &def;
	}
	if (cfg->size < offsetof(struct pcpmap_client_config, trace_userdata) + sizeof(void *) ||
	    cfg->size > sizeof(struct pcpmap_client_config))
		return -EINVAL;
	if (cfg->transport_family != 0 && cfg->transport_family != AF_INET &&
	    cfg->transport_family != AF_INET6)
		return -EINVAL;
	if (cfg->size >= offsetof(struct pcpmap_client_config, mode) + sizeof(cfg->mode) &&
	    (unsigned)cfg->mode > PCPMAP_MODE_DAEMON)
		return -EINVAL;
	if (cfg->server) {
		struct pm_sockaddr sa;
		if (pm_parse_server(cfg->server, &sa) < 0)
			return -EINVAL;
	}

	pcpmap_client *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	memcpy(&c->cfg, cfg, cfg->size);
	c->cfg.size = sizeof(c->cfg);
	c->cfg.daemon_socket = NULL; /* the daemon mode keeps its own copy */
	c->cfg.cache_dir = NULL;     /* copied into c->cache_dir */
	if (!c->cfg.no_gw_cache) {
		const char *dir =
		    cfg->size >= offsetof(struct pcpmap_client_config, cache_dir) + sizeof(char *)
			? cfg->cache_dir
			: NULL;
		if (dir && (!dir[0] || strlen(dir) >= sizeof(c->cache_dir))) {
			free(c);
			return -EINVAL;
		}
		if (dir)
			pm_text_copy(c->cache_dir, sizeof(c->cache_dir), dir);
		else if (pm_gwcache_default_dir(c->cache_dir, sizeof(c->cache_dir)) < 0)
			c->cache_dir[0] = '\0';
	}
	if (cfg->server) {
		c->server_str = strdup(cfg->server);
		if (!c->server_str) {
			free(c);
			return -ENOMEM;
		}
		c->cfg.server = c->server_str;
	}
	if (!c->cfg.protocols)
		c->cfg.protocols = PCPMAP_PROTOS_ALL;
	if (!c->cfg.max_mappings)
		c->cfg.max_mappings = PCPMAP_DEFAULT_MAX_MAPPINGS;
	c->codec.port_reservation_code = c->cfg.port_reservation_code;
	c->env = *env;
	for (int p = 0; p < PM_NPROTO; p++)
		c->backends[p] = pm_backend_for((enum pcpmap_proto)p);
	/* Preference: the configured order, then the rest in the default order. */
	size_t n = 0;
	for (size_t i = 0; i < 3 && c->cfg.size >= offsetof(struct pcpmap_client_config, protocol_order) + 3;
	     i++) {
		enum pcpmap_proto p = (enum pcpmap_proto)c->cfg.protocol_order[i];
		bool dup = false;
		for (size_t j = 0; j < n; j++)
			dup |= c->order[j] == p;
		if (p >= PCPMAP_PROTO_PCP && p <= PCPMAP_PROTO_UPNP && !dup)
			c->order[n++] = p;
	}
	for (enum pcpmap_proto p = PCPMAP_PROTO_PCP; p <= PCPMAP_PROTO_UPNP; p++) {
		bool dup = false;
		for (size_t j = 0; j < n; j++)
			dup |= c->order[j] == p;
		if (!dup)
			c->order[n++] = p;
	}
	pm_list_init(&c->gateways);
	pm_list_init(&c->mappings);
	sched_init(&c->sched);
	c->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (c->epfd < 0) {
		r = -errno;
		sched_fini(&c->sched);
		free(c->server_str);
		free(c);
		return r;
	}
	c->now = c->env.clock.now_us(c->env.clock.ctx);
	c->default_gateway = pm_net_default_gateway;
	c->neighbour_lladdr = pm_net_neighbour_lladdr;
	sched_timer_init(&c->announce.timer, announce_timer, c, "announce");
	pm_probe_init(c);
	pm_resilience_init(c);
	c->ops = &pm_engine_ops;
	r = pm_dmode_start(c, cfg);
	if (r < 0) {
		pcpmap_client_free(c);
		return r;
	}
	*ret = c;
	return 0;
}

PCPMAP_EXPORT int pcpmap_client_new(pcpmap_client **ret, const struct pcpmap_client_config *cfg)
{
	struct pm_env env = {
		.clock = { .now_us = real_now_us, .ctx = NULL },
		.rand = { .fill = real_fill, .ctx = NULL },
	};
	return pm_client_new_env(ret, cfg, &env);
}

PCPMAP_EXPORT pcpmap_client *pcpmap_client_free(pcpmap_client *c)
{
	if (!c)
		return NULL;
	/* Daemon mode: closing the connection makes the daemon delete what is not persistent. */
	if (c->ops && c->ops->stop)
		c->ops->stop(c);
	/* One best-effort delete per live mapping, then drop everything. */
	while (!pm_list_empty(&c->mappings)) {
		struct pm_mapping *m = pm_container_of(c->mappings.next, struct pm_mapping, link);
		pm_mapping_send_final_delete(m);
		pm_mapping_destroy(m);
	}
	pm_client_free_gateways(c);
	pm_resilience_fini(c);
	pm_probe_fini(c);
	while (c->ev_head) {
		struct pm_event *e = c->ev_head;
		c->ev_head = e->next;
		free(e->probe_result);
		free(e);
	}
	while (c->watches) {
		struct pm_watch *w = c->watches;
		c->watches = w->next;
		free(w);
	}
	while (c->dead_watches) {
		struct pm_watch *w = c->dead_watches;
		c->dead_watches = w->next;
		free(w);
	}
	sched_fini(&c->sched);
	if (c->epfd >= 0)
		close(c->epfd);
	pm_nonce_index_free(c);
	free(c->server_str);
	free(c);
	return NULL;
}

PCPMAP_EXPORT int pcpmap_client_get_fd(const pcpmap_client *c)
{
	if (!c)
		return -EINVAL;
	return c->epfd;
}

PCPMAP_EXPORT uint64_t pcpmap_client_next_deadline(const pcpmap_client *c)
{
	if (!c)
		return UINT64_MAX;
	if (c->ev_head)
		return 0;
	return sched_next(&c->sched);
}

PCPMAP_EXPORT int pcpmap_client_get_timeout(const pcpmap_client *c)
{
	if (!c)
		return -EINVAL;
	uint64_t d = pcpmap_client_next_deadline(c);
	if (d == UINT64_MAX)
		return -1;
	uint64_t now = c->env.clock.now_us(c->env.clock.ctx);
	if (d <= now)
		return 0;
	uint64_t ms = (d - now + 999) / 1000;
	return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

static int watch(pcpmap_client *c, int fd, struct pm_server *s, void (*fn)(pcpmap_client *c, int fd))
{
	struct pm_watch *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->server = s;
	w->fn = fn;
	w->fd = fd;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = w };
	if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int r = -errno;
		free(w);
		return r;
	}
	w->next = c->watches;
	c->watches = w;
	return 0;
}

int pm_server_watch_fd(struct pm_server *s, int fd)
{
	return watch(s->client, fd, s, NULL);
}

int pm_client_watch_fd(pcpmap_client *c, int fd, void (*fn)(pcpmap_client *c, int fd))
{
	return watch(c, fd, NULL, fn);
}

static void unwatch(pcpmap_client *c, int fd, const struct pm_server *s)
{
	for (struct pm_watch **pp = &c->watches; *pp; pp = &(*pp)->next) {
		if ((*pp)->fd == fd && (*pp)->server == s) {
			struct pm_watch *w = *pp;
			*pp = w->next;
			epoll_ctl(c->epfd, EPOLL_CTL_DEL, fd, NULL);
			/* An epoll batch being dispatched may still point at it: free it after the batch. */
			w->fd = -1;
			w->server = NULL;
			w->fn = NULL;
			w->next = c->dead_watches;
			c->dead_watches = w;
			return;
		}
	}
}

int pm_client_watch_out(pcpmap_client *c, int fd, bool on)
{
	for (struct pm_watch *w = c->watches; w; w = w->next) {
		if (w->fd != fd || w->server)
			continue;
		struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0u), .data.ptr = w };
		return epoll_ctl(c->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
	}
	return -ENOENT;
}

void pm_server_unwatch_fd(struct pm_server *s, int fd)
{
	unwatch(s->client, fd, s);
}

void pm_client_unwatch_fd(pcpmap_client *c, int fd)
{
	unwatch(c, fd, NULL);
}

void pm_client_queue_event(pcpmap_client *c, struct pm_event *e)
{
	e->next = NULL;
	if (c->ev_tail)
		c->ev_tail->next = e;
	else
		c->ev_head = e;
	c->ev_tail = e;
}

void pm_client_purge_events(pcpmap_client *c, const void *mapping)
{
	struct pm_event **pp = &c->ev_head;
	c->ev_tail = NULL;
	while (*pp) {
		struct pm_event *e = *pp;
		if ((e->m && (const void *)e->m == mapping) ||
		    (e->handle && (const void *)e->handle == mapping)) {
			*pp = e->next;
			free(e);
			continue;
		}
		c->ev_tail = e;
		pp = &e->next;
	}
}

static void dispatch_events(pcpmap_client *c)
{
	/* Events queued by callbacks wait for the next round, so a callback cannot starve the loop. */
	struct pm_event *tail = c->ev_tail;
	while (c->ev_head) {
		struct pm_event *e = c->ev_head;
		c->ev_head = e->next;
		if (!c->ev_head)
			c->ev_tail = NULL;
		if (e->kind == PM_EVENT_SERVER) {
			if (e->server_cb)
				e->server_cb(c, &e->server_info, e->userdata);
		} else if (e->kind == PM_EVENT_PROBE) {
			if (e->probe_cb)
				e->probe_cb(c, e->probe_result, e->userdata);
			free(e->probe_result);
		} else if (e->kind == PM_EVENT_PROXY) {
			if (e->cb)
				e->cb(e->handle, e->ev, &e->info, e->userdata);
		} else if (e->m && e->m->user_owned && e->m->cb) {
			e->m->cb((pcpmap_mapping *)e->m, e->ev, &e->info, e->m->userdata);
		}
		bool last = e == tail;
		free(e);
		if (last || c->stop)
			break;
	}
}

PCPMAP_EXPORT int pcpmap_client_process(pcpmap_client *c)
{
	struct epoll_event evs[16];

	if (!c)
		return -EINVAL;
	c->now = c->env.clock.now_us(c->env.clock.ctx);
	for (unsigned round = 0; round < 64; round++) {
		int n = epoll_wait(c->epfd, evs, 16, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			struct pm_watch *w = evs[i].data.ptr;
			if (w->fd < 0)
				continue; /* unwatched by an earlier callback of this batch */
			if (w->fn)
				w->fn(c, w->fd);
			else
				w->server->ops->readable(w->server, w->fd, c->now);
		}
		while (c->dead_watches) {
			struct pm_watch *w = c->dead_watches;
			c->dead_watches = w->next;
			free(w);
		}
		if (n < 16)
			break;
	}
	sched_run(&c->sched, c->now, 0);
	dispatch_events(c);
	return 0;
}

PCPMAP_EXPORT void pcpmap_client_stop(pcpmap_client *c)
{
	if (c)
		c->stop = true;
}

int pm_client_wait(pcpmap_client *c, bool (*done)(pcpmap_client *c, void *ud), void *ud, int timeout_ms)
{
	uint64_t end = timeout_ms < 0 ? UINT64_MAX : pcpmap_now_usec() + (uint64_t)timeout_ms * 1000u;
	for (;;) {
		int r = pcpmap_client_process(c);
		if (r < 0)
			return r;
		if (done(c, ud))
			return 0;
		uint64_t now = pcpmap_now_usec();
		if (now >= end)
			return -ETIMEDOUT;
		int t = pcpmap_client_get_timeout(c);
		uint64_t left_ms = end == UINT64_MAX ? UINT64_MAX : (end - now + 999) / 1000;
		if (t < 0 || (uint64_t)t > left_ms)
			t = left_ms > INT32_MAX ? INT32_MAX : (int)left_ms;
		struct pollfd pfd = { .fd = c->epfd, .events = POLLIN };
		if (poll(&pfd, 1, t) < 0)
			return errno == EINTR ? -EINTR : -errno;
	}
}

static bool stopped(pcpmap_client *c, void *ud)
{
	(void)ud;
	return c->stop;
}

PCPMAP_EXPORT int pcpmap_client_run(pcpmap_client *c, int timeout_ms)
{
	if (!c)
		return -EINVAL;
	c->stop = false;
	int r = pm_client_wait(c, stopped, NULL, timeout_ms);
	c->stop = false;
	return r == -ETIMEDOUT ? 0 : r;
}

PCPMAP_EXPORT void pcpmap_client_set_log_level(pcpmap_client *c, enum pcpmap_log_level level)
{
	if (c)
		c->cfg.log_level = level;
}

PCPMAP_EXPORT void pcpmap_client_get_stats_sized(const pcpmap_client *c, struct pcpmap_stats *ret,
						 size_t size)
{
	struct pcpmap_stats zero;
	if (!ret)
		return;
	memset(&zero, 0, sizeof(zero));
	memcpy(ret, c ? &c->stats : &zero, size < sizeof(zero) ? size : sizeof(zero));
}

PCPMAP_EXPORT void(pcpmap_client_get_stats)(const pcpmap_client *c, struct pcpmap_stats *ret)
{
	pcpmap_client_get_stats_sized(c, ret, PM_STATS_SIZE_V0);
}

static bool epoch_check(struct pm_server *s, uint32_t epoch, bool natpmp_rule, bool announced)
{
	pcpmap_client *c = s->client;
	uint64_t now_s = c->now / 1000000u;
	bool had = s->epoch.have;
	uint32_t prev = s->epoch.server;
	bool ok = natpmp_rule ? natpmp_epoch_check(&s->epoch, epoch, now_s)
			      : pcp_epoch_check(&s->epoch, epoch, now_s);
	if (ok)
		return true;
	/* A restart: answers written before it may still arrive (reordered, held), with epochs the new run
	 * cannot have reached yet (pm_server_epoch_stale). An announcement that fails the check is one too,
	 * even when the epochs alone do not go backwards (0 after 0). */
	if (had && (epoch < prev || announced)) {
		s->reset_prev_epoch = prev;
		s->reset_seen_at = c->now;
	}
	c->stats.epoch_resets++;
	pm_log(c, PCPMAP_LOG_NOTICE,
	       "%s server %s may have lost its state (epoch %u after %u%s%s): confirming its mappings",
	       s->ops->name, s->name, epoch, prev, had ? "" : ", first", announced ? ", announced" : "");
	return false;
}

#define STALE_WINDOW_US (120ull * 1000000u)

bool pm_server_epoch_stale(const struct pm_server *s, uint32_t epoch)
{
	const pcpmap_client *c = s->client;
	if (!s->reset_seen_at || c->now > s->reset_seen_at + STALE_WINDOW_US || !s->epoch.have)
		return false;
	/* Within two seconds of the old run's count and far beyond what the new run can have reached. */
	uint64_t elapsed_s = (c->now - s->reset_seen_at) / 1000000u;
	return (uint64_t)epoch + 2 >= s->reset_prev_epoch &&
	       (uint64_t)epoch > (uint64_t)s->epoch.server + elapsed_s + 2;
}

bool pm_server_on_epoch(struct pm_server *s, uint32_t epoch, bool natpmp_rule, struct pm_mapping *except)
{
	if (epoch_check(s, epoch, natpmp_rule, false))
		return true;
	/* A unicast answer: confirm the others at once (paced); the answering mapping just was. PCP and NAT-PMP
	 * share the gateway's daemon (and port 5351), so every mapping held through that gateway is confirmed. */
	if (s->gw) {
		for (int p = 0; p < PM_NPROTO; p++)
			if (s->gw->srv[p])
				pm_remap_server(s->gw->srv[p], except, 0);
	} else {
		pm_remap_server(s, except, 0);
	}
	return false;
}

bool pm_gw_on_announced(struct pm_gw *gw, struct pm_server *s, uint32_t epoch, bool natpmp_rule)
{
	pcpmap_client *c = gw->client;
	bool ok = s ? epoch_check(s, epoch, natpmp_rule, true) : true;
	/* RFC 6887 14.1.1: every host on the link hears a multicast announcement, so spread the load. */
	uint64_t delay = pm_announce_delay_us(&c->env.rand);
	for (int p = 0; p < PM_NPROTO; p++)
		if (gw->srv[p])
			pm_remap_server(gw->srv[p], NULL, delay);
	return ok;
}

static size_t nonce_hash(const uint8_t nonce[PCP_NONCE_LEN], size_t cap)
{
	/* FNV-1a: nonces are random from us but may be derived by an application. */
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < PCP_NONCE_LEN; i++)
		h = (h ^ nonce[i]) * 16777619u;
	return h & (cap - 1);
}

static void nonce_insert(pcpmap_client *c, struct pm_mapping *m)
{
	size_t b = nonce_hash(m->nonce, c->nonce_cap);
	m->nonce_next = c->nonce_tab[b];
	c->nonce_tab[b] = m;
}

static void nonce_remove(pcpmap_client *c, struct pm_mapping *m)
{
	if (!c->nonce_cap)
		return;
	for (struct pm_mapping **pp = &c->nonce_tab[nonce_hash(m->nonce, c->nonce_cap)]; *pp;
	     pp = &(*pp)->nonce_next)
		if (*pp == m) {
			*pp = m->nonce_next;
			m->nonce_next = NULL;
			return;
		}
}

int pm_mapping_link(struct pm_mapping *m)
{
	pcpmap_client *c = m->client;
	if (c->n_mappings + 1 > c->nonce_cap) {
		/* Grow to twice the mappings, rehash; a failed grow leaves the old table intact. */
		size_t cap = c->nonce_cap ? c->nonce_cap * 2 : 64;
		struct pm_mapping **tab = calloc(cap, sizeof(*tab));
		if (!tab)
			return -ENOMEM;
		struct pm_mapping **old = c->nonce_tab;
		size_t old_cap = c->nonce_cap;
		c->nonce_tab = tab;
		c->nonce_cap = cap;
		for (size_t i = 0; i < old_cap; i++)
			for (struct pm_mapping *x = old[i], *next; x; x = next) {
				next = x->nonce_next;
				nonce_insert(c, x);
			}
		free(old);
	}
	pm_list_add_tail(&c->mappings, &m->link);
	c->n_mappings++;
	nonce_insert(c, m);
	return 0;
}

void pm_walk_begin(pcpmap_client *c, struct pm_walk *w)
{
	w->next = c->mappings.next;
	w->outer = c->walks;
	c->walks = w;
}

void pm_walk_end(pcpmap_client *c, struct pm_walk *w)
{
	/* Walks end innermost first. */
	if (c->walks == w)
		c->walks = w->outer;
}

struct pm_mapping *pm_walk_next(pcpmap_client *c, struct pm_walk *w)
{
	if (w->next == &c->mappings) {
		pm_walk_end(c, w);
		return NULL;
	}
	struct pm_mapping *m = pm_container_of(w->next, struct pm_mapping, link);
	w->next = w->next->next;
	return m;
}

void pm_mapping_unlink(struct pm_mapping *m)
{
	pcpmap_client *c = m->client;
	for (struct pm_walk *w = c->walks; w; w = w->outer)
		if (w->next == &m->link)
			w->next = m->link.next;
	nonce_remove(c, m);
	pm_list_del(&m->link);
	c->n_mappings--;
}

void pm_mapping_renonce(struct pm_mapping *m, const uint8_t *nonce)
{
	pcpmap_client *c = m->client;
	if (m->server && m->server->ops->retire)
		m->server->ops->retire(m->server, m);
	nonce_remove(c, m);
	if (nonce)
		memcpy(m->nonce, nonce, PCP_NONCE_LEN);
	else
		c->env.rand.fill(c->env.rand.ctx, m->nonce, sizeof(m->nonce));
	nonce_insert(c, m);
}

void pm_nonce_index_free(pcpmap_client *c)
{
	free(c->nonce_tab);
	c->nonce_tab = NULL;
	c->nonce_cap = 0;
}

struct pm_mapping *pm_server_find_nonce(struct pm_server *s, const uint8_t nonce[PCP_NONCE_LEN])
{
	pcpmap_client *c = s->client;
	if (!c->nonce_cap)
		return NULL;
	for (struct pm_mapping *m = c->nonce_tab[nonce_hash(nonce, c->nonce_cap)]; m; m = m->nonce_next)
		if (m->server == s && memcmp(m->nonce, nonce, PCP_NONCE_LEN) == 0)
			return m;
	return NULL;
}

/* Announcement probe. */
static void announce_timer(struct sched_timer *t, uint64_t now, void *arg)
{
	(void)t;
	pcpmap_client *c = arg;
	struct pm_server *s = c->announce.server;
	if (!s)
		return;
	uint64_t deadline;
	if (now >= c->announce.deadline ||
	    pm_retx_next(&c->announce.retx, now, &c->env.rand, &deadline) < 0) {
		struct pcpmap_server_info info;
		memset(&info, 0, sizeof(info));
		pm_text_copy(info.server, sizeof(info.server), s->name);
		info.error = -ETIMEDOUT;
		pm_server_on_announce(s, &info);
		return;
	}
	c->stats.retransmits++;
	if (s->ops->announce)
		s->ops->announce(s);
	sched_arm(&c->sched, &c->announce.timer,
		  deadline < c->announce.deadline ? deadline : c->announce.deadline);
}

int pm_client_announce_on(pcpmap_client *c, struct pm_server *s, int timeout_ms, pcpmap_server_fn cb,
			  void *userdata)
{
	int r;
	if (c->announce.server)
		return -EBUSY;
	c->announce.server = s;
	c->announce.cb = cb;
	c->announce.userdata = userdata;
	c->announce.sent_at = c->now;
	c->announce.deadline = c->now + (uint64_t)timeout_ms * 1000u;
	sched_timer_init(&c->announce.timer, announce_timer, c, "announce");
	pm_retx_init(&c->announce.retx, s->ops->irt_us, s->ops->mrt_us, 0, 0);
	uint64_t deadline;
	pm_retx_next(&c->announce.retx, c->now, &c->env.rand, &deadline);
	r = s->ops->announce ? s->ops->announce(s) : -EOPNOTSUPP;
	if (r < 0 && r != -ECONNREFUSED) {
		c->announce.server = NULL;
		return r;
	}
	if (r == -ECONNREFUSED)
		pm_server_defer_error(s, r);
	sched_arm(&c->sched, &c->announce.timer,
		  deadline < c->announce.deadline ? deadline : c->announce.deadline);
	return 0;
}

static int engine_announce(pcpmap_client *c, int timeout_ms, pcpmap_server_fn cb, void *userdata)
{
	struct pm_server *s;
	int r;

	if (c->announce.server)
		return -EBUSY;
	c->now = c->env.clock.now_us(c->env.clock.ctx);
	/* The gateway's learned protocol, else the first enabled one that can announce (PCP first). */
	struct pm_gw *gw;
	r = pm_client_gateway_for(c, 0, &gw);
	if (r < 0)
		return r;
	enum pcpmap_proto proto = gw->chosen;
	for (size_t i = 0; i < 3 && !proto; i++) {
		enum pcpmap_proto p = c->order[i];
		if ((c->cfg.protocols & PCPMAP_PROTO_BIT(p)) && c->backends[p] && c->backends[p]->announce)
			proto = p;
	}
	if (!proto)
		return -EPROTONOSUPPORT;
	r = pm_gw_server(gw, proto, &s);
	if (r < 0)
		return r;
	return pm_client_announce_on(c, s, timeout_ms, cb, userdata);
}

PCPMAP_EXPORT int pcpmap_client_announce(pcpmap_client *c, int timeout_ms, pcpmap_server_fn cb,
					 void *userdata)
{
	return c && timeout_ms >= 0 ? c->ops->announce(c, timeout_ms, cb, userdata) : -EINVAL;
}

const struct pm_ops pm_engine_ops = {
	.mapping_new = pm_engine_mapping_new,
	.mapping_free = pm_engine_mapping_free,
	.mapping_delete = pm_engine_mapping_delete,
	.mapping_abandon = pm_engine_mapping_abandon,
	.mapping_get_info = pm_engine_mapping_get_info,
	.mapping_set_callback = pm_engine_mapping_set_callback,
	.flush = pm_engine_flush,
	.unmap_sync = pm_engine_unmap_sync,
	.probe = pm_engine_probe,
	.probe_sync = pm_engine_probe_sync,
	.announce = engine_announce,
};

void pm_server_on_announce(struct pm_server *s, const struct pcpmap_server_info *info)
{
	pcpmap_client *c = s->client;
	if (c->announce.server != s)
		return;
	struct pm_event *e = calloc(1, sizeof(*e));
	c->announce.server = NULL;
	sched_cancel(&c->sched, &c->announce.timer);
	if (!e)
		return;
	e->kind = PM_EVENT_SERVER;
	e->server_cb = c->announce.cb;
	e->userdata = c->announce.userdata;
	e->server_info = *info;
	if (!info->error)
		e->server_info.rtt_usec = (uint32_t)(c->now - c->announce.sent_at);
	pm_client_queue_event(c, e);
}

const struct pm_backend_ops *pm_backend_for(enum pcpmap_proto proto)
{
	switch (proto) {
	case PCPMAP_PROTO_PCP:
		return &pm_pcp_backend;
#ifdef PCPMAP_HAVE_NATPMP
	case PCPMAP_PROTO_NATPMP:
		return &pm_natpmp_backend;
#endif
#ifdef PCPMAP_HAVE_UPNP
	case PCPMAP_PROTO_UPNP:
		return &pm_upnp_backend;
#endif
	default:
		return NULL;
	}
}

struct pm_mapping *pm_client_find_mapping(pcpmap_client *c, uint64_t id)
{
	for (struct pm_list *l = c->mappings.next; l != &c->mappings; l = l->next) {
		struct pm_mapping *m = pm_container_of(l, struct pm_mapping, link);
		if (m->id == id)
			return m;
	}
	return NULL;
}
