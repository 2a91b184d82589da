/* A hiredis client for the uprobe tests and the hiredis-loop benchmark.
 *
 *   hiredis_client PORT script   waits for a line on stdin, then runs a fixed set of calls
 *                                (redisCommand, redisCommandArgv, redisAppendCommand +
 *                                redisGetReply, an error reply), prints "done" and exits
 *                                at the next line
 *   hiredis_client PORT loop SECONDS
 *                                GET in a loop for SECONDS; prints "ops_per_sec N" and
 *                                "cpu_us_per_op N" (this process's user + system CPU time,
 *                                where the kernel runs the uprobes, per call)
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static void check(redisContext *c, redisReply *r, const char *what) {
    if (r == NULL) {
        fprintf(stderr, "%s: %s\n", what, c->errstr);
        exit(1);
    }
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s PORT|SOCKET script|loop [SECONDS]\n", argv[0]);
        return 2;
    }
    /* A path: the server's unix socket. */
    redisContext *c = argv[1][0] == '/' ? redisConnectUnix(argv[1]) : redisConnect("127.0.0.1", atoi(argv[1]));
    if (c == NULL || c->err) {
        fprintf(stderr, "connect: %s\n", c ? c->errstr : "out of memory");
        return 1;
    }
    if (strcmp(argv[2], "loop") == 0) {
        double seconds = argc > 3 ? atof(argv[3]) : 5;
        redisReply *r = redisCommand(c, "SET bench:key %s", "value");
        check(c, r, "SET");
        freeReplyObject(r);
        long ops = 0;
        double start = now(), end = start + seconds;
        while (1) {
            for (int i = 0; i < 100; i++) {
                r = redisCommand(c, "GET bench:key");
                check(c, r, "GET");
                freeReplyObject(r);
            }
            ops += 100;
            if (now() >= end) break;
        }
        printf("ops_per_sec %.1f\n", ops / (now() - start));
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
        printf("cpu_us_per_op %.3f\n", cpu * 1e6 / ops);
        redisFree(c);
        return 0;
    }
    char line[64];
    printf("ready\n");
    fflush(stdout);
    if (fgets(line, sizeof line, stdin) == NULL) return 1;

    redisReply *r = redisCommand(c, "SET user:42 %s", "hunter2-secret");
    check(c, r, "SET");
    freeReplyObject(r);
    r = redisCommand(c, "GET user:42");
    check(c, r, "GET");
    freeReplyObject(r);
    const char *argv_cmd[] = {"HSET", "profile:42", "email", "alice@example.com"};
    r = redisCommandArgv(c, 4, argv_cmd, NULL);
    check(c, r, "HSET");
    freeReplyObject(r);
    /* An error reply: INCR on a value that is not a number. */
    r = redisCommand(c, "INCR user:42");
    check(c, r, "INCR");
    freeReplyObject(r);
    /* Pipelining: three appended commands, then their replies. */
    redisAppendCommand(c, "LPUSH queue:7 %s", "job-a");
    redisAppendCommand(c, "LPUSH queue:7 %s", "job-b");
    redisAppendCommand(c, "LLEN queue:7");
    for (int i = 0; i < 3; i++) {
        if (redisGetReply(c, (void **)&r) != REDIS_OK) {
            fprintf(stderr, "redisGetReply: %s\n", c->errstr);
            return 1;
        }
        freeReplyObject(r);
    }
    printf("done\n");
    fflush(stdout);
    /* Stays alive until told (the daemon names the service from this process's environment). */
    if (fgets(line, sizeof line, stdin) == NULL) return 0;
    redisFree(c);
    return 0;
}
