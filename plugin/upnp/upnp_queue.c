/* The UPnP worker: miniupnpc blocks, so its calls run on one thread per server, fed by a bounded FIFO.
 * Results go back in the same order through a second list and an eventfd the loop thread polls. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "upnp/upnp_int.h"

static void push(struct upnp_job **head, struct upnp_job **tail, struct upnp_job *j)
{
	j->next = NULL;
	if (*tail)
		(*tail)->next = j;
	else
		*head = j;
	*tail = j;
}

static struct upnp_job *pop(struct upnp_job **head, struct upnp_job **tail)
{
	struct upnp_job *j = *head;
	if (!j)
		return NULL;
	*head = j->next;
	if (!*head)
		*tail = NULL;
	j->next = NULL;
	return j;
}

static void wake_loop(struct upnp_queue *q)
{
	uint64_t one = 1;
	/* EAGAIN only when the counter is saturated, which still reads as readable. */
	ssize_t n = write(q->efd, &one, sizeof(one));
	(void)n;
}

static void *worker_main(void *arg)
{
	struct upnp_queue *q = arg;
	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (!q->todo_head && !atomic_load(&q->stop))
			pthread_cond_wait(&q->cond, &q->lock);
		struct upnp_job *j = pop(&q->todo_head, &q->todo_tail);
		if (!j)
			break; /* stopping and nothing left */
		if (atomic_load(&q->stop) && !(q->keep && q->keep(j))) {
			q->count--;
			free(j);
			continue;
		}
		q->running = j;
		pthread_mutex_unlock(&q->lock);
		q->run(q->ctx, j);
		pthread_mutex_lock(&q->lock);
		q->running = NULL;
		if (atomic_load(&q->stop)) {
			/* Nobody will read it. */
			q->count--;
			free(j);
			continue;
		}
		push(&q->done_head, &q->done_tail, j);
		wake_loop(q);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

int upnp_queue_start(struct upnp_queue *q, size_t cap, upnp_run_fn run, upnp_keep_fn keep, void *ctx)
{
	memset(q, 0, sizeof(*q));
	q->cap = cap ? cap : UPNP_QUEUE_DEFAULT;
	q->run = run;
	q->keep = keep;
	q->ctx = ctx;
	atomic_init(&q->stop, false);
	q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->efd < 0)
		return -errno;
	int r = pthread_mutex_init(&q->lock, NULL);
	if (r) {
		close(q->efd);
		return -r;
	}
	r = pthread_cond_init(&q->cond, NULL);
	if (r) {
		pthread_mutex_destroy(&q->lock);
		close(q->efd);
		return -r;
	}
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&q->thread, NULL, worker_main, q);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		pthread_cond_destroy(&q->cond);
		pthread_mutex_destroy(&q->lock);
		close(q->efd);
		return -r;
	}
	q->started = true;
	return 0;
}

static int post(struct upnp_queue *q, struct upnp_job *j, bool done)
{
	int r = 0;
	pthread_mutex_lock(&q->lock);
	if (atomic_load(&q->stop)) {
		r = -ESHUTDOWN;
	} else if (q->count >= q->cap) {
		r = -ENOBUFS;
	} else {
		q->count++;
		if (done) {
			push(&q->done_head, &q->done_tail, j);
			wake_loop(q);
		} else {
			push(&q->todo_head, &q->todo_tail, j);
			pthread_cond_signal(&q->cond);
		}
	}
	pthread_mutex_unlock(&q->lock);
	return r;
}

int upnp_queue_post(struct upnp_queue *q, struct upnp_job *j)
{
	return post(q, j, false);
}

int upnp_queue_post_done(struct upnp_queue *q, struct upnp_job *j)
{
	return post(q, j, true);
}

void upnp_queue_clear(struct upnp_queue *q)
{
	uint64_t v;
	/* Before taking: a result pushed after this read writes the eventfd again. */
	ssize_t n = read(q->efd, &v, sizeof(v));
	(void)n;
}

struct upnp_job *upnp_queue_take(struct upnp_queue *q)
{
	pthread_mutex_lock(&q->lock);
	struct upnp_job *j = pop(&q->done_head, &q->done_tail);
	if (j)
		q->count--;
	pthread_mutex_unlock(&q->lock);
	return j;
}

bool upnp_queue_find(struct upnp_queue *q, bool (*match)(const struct upnp_job *j, const void *arg),
		     const void *arg)
{
	bool found = false;
	pthread_mutex_lock(&q->lock);
	for (const struct upnp_job *j = q->todo_head; j && !found; j = j->next)
		found = match(j, arg);
	if (!found && q->running)
		found = match(q->running, arg);
	for (const struct upnp_job *j = q->done_head; j && !found; j = j->next)
		found = match(j, arg);
	pthread_mutex_unlock(&q->lock);
	return found;
}

void upnp_queue_stop(struct upnp_queue *q)
{
	if (!q->started)
		return;
	pthread_mutex_lock(&q->lock);
	atomic_store(&q->stop, true);
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->thread, NULL);
	struct upnp_job *j;
	while ((j = pop(&q->done_head, &q->done_tail)))
		free(j);
	while ((j = pop(&q->todo_head, &q->todo_tail)))
		free(j);
	q->count = 0;
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
	close(q->efd);
	q->efd = -1;
	q->started = false;
}
