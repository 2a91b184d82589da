/* An async hiredis client for the uprobe tests, with a minimal poll(2) event loop of its own.
 *
 *   hiredis_async_client PORT   prints "ready", waits for a line on stdin, queues SET, GET and
 *                               an INCR that fails with redisAsyncCommand, runs the loop until
 *                               the three replies came, prints "done" and exits at the next line
 */
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>

static int want_read, want_write, pending;

static void add_read(void *p) { (void)p; want_read = 1; }
static void del_read(void *p) { (void)p; want_read = 0; }
static void add_write(void *p) { (void)p; want_write = 1; }
static void del_write(void *p) { (void)p; want_write = 0; }
static void cleanup(void *p) { (void)p; want_read = want_write = 0; }

static void on_reply(redisAsyncContext *ac, void *r, void *priv) {
    (void)ac;
    (void)r;
    (void)priv;
    pending--;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    char line[64];
    printf("ready\n");
    fflush(stdout);
    if (fgets(line, sizeof line, stdin) == NULL) return 1;
    redisAsyncContext *ac = redisAsyncConnect("127.0.0.1", atoi(argv[1]));
    if (ac == NULL || ac->err) {
        fprintf(stderr, "connect: %s\n", ac ? ac->errstr : "out of memory");
        return 1;
    }
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    want_write = 1; /* completes the non-blocking connect */
    redisAsyncCommand(ac, on_reply, NULL, "SET async:1 %s", "async-secret");
    redisAsyncCommand(ac, on_reply, NULL, "GET async:1");
    redisAsyncCommand(ac, on_reply, NULL, "INCR async:1");
    pending = 3;
    for (int i = 0; i < 1000 && pending > 0; i++) {
        struct pollfd p = {ac->c.fd, (short)((want_read ? POLLIN : 0) | (want_write ? POLLOUT : 0)), 0};
        if (poll(&p, 1, 100) < 0) return 1;
        if (p.revents & POLLOUT) redisAsyncHandleWrite(ac);
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) redisAsyncHandleRead(ac);
    }
    if (pending > 0) {
        fprintf(stderr, "replies missing: %d\n", pending);
        return 1;
    }
    printf("done\n");
    fflush(stdout);
    if (fgets(line, sizeof line, stdin) == NULL) return 0;
    return 0;
}
