/* A libmariadb client for the uprobe tests.
 *
 *   mariadb_client PORT plain|tls
 *   mariadb_client SOCKET unix
 *
 * Connects (TLS enforced with "tls"), waits for a line on stdin, then runs: mysql_query,
 * mysql_real_query, a failing query, mysql_send_query + mysql_read_query_result, and a
 * prepared statement (mysql_stmt_prepare / mysql_stmt_execute). Prints "done" and exits at the
 * next line.
 */
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void drain(MYSQL *m) {
    MYSQL_RES *res = mysql_store_result(m);
    if (res) mysql_free_result(res);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s PORT plain|tls\n", argv[0]);
        return 2;
    }
    int tls = strcmp(argv[2], "tls") == 0;
    int unix_socket = strcmp(argv[2], "unix") == 0;
    MYSQL *m = mysql_init(NULL);
    my_bool yes = 1, no = 0;
    if (tls) {
        mysql_options(m, MYSQL_OPT_SSL_ENFORCE, &yes);
        mysql_options(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &no);
    } else {
        mysql_options(m, MYSQL_OPT_SSL_ENFORCE, &no);
    }
    printf("ready\n");
    fflush(stdout);
    char line[64];
    if (fgets(line, sizeof line, stdin) == NULL) return 1;
    int ok = unix_socket ? mysql_real_connect(m, "localhost", "root", "", "shop", 0, argv[1], 0) != NULL
                         : mysql_real_connect(m, "127.0.0.1", "root", "", "shop", atoi(argv[1]), NULL, 0) != NULL;
    if (!ok) {
        fprintf(stderr, "connect: %s\n", mysql_error(m));
        return 1;
    }
    if (tls && mysql_get_ssl_cipher(m) == NULL) {
        fprintf(stderr, "TLS was not negotiated\n");
        return 1;
    }
    if (mysql_query(m, "SELECT name FROM items WHERE id = 1")) return 1;
    drain(m);
    const char *ins = "INSERT INTO items VALUES (7, 'secret-lamp')";
    if (mysql_real_query(m, ins, strlen(ins))) return 1;
    if (mysql_query(m, "SELECT * FROM no_such_table") == 0) return 1;
    const char *sel = "SELECT name FROM items WHERE id = 2";
    if (mysql_send_query(m, sel, strlen(sel))) return 1;
    if (mysql_read_query_result(m)) return 1;
    drain(m);
    MYSQL_STMT *st = mysql_stmt_init(m);
    const char *ps = "UPDATE items SET name = ? WHERE id = 7";
    if (mysql_stmt_prepare(st, ps, strlen(ps))) return 1;
    MYSQL_BIND b;
    memset(&b, 0, sizeof b);
    char val[] = "desk-lamp";
    unsigned long len = strlen(val);
    b.buffer_type = MYSQL_TYPE_STRING;
    b.buffer = val;
    b.buffer_length = len;
    b.length = &len;
    if (mysql_stmt_bind_param(st, &b)) return 1;
    if (mysql_stmt_execute(st)) return 1;
    mysql_stmt_close(st);
    mysql_close(m);
    printf("done\n");
    fflush(stdout);
    /* Stays alive until told (the daemon names the service from this process's environment). */
    if (fgets(line, sizeof line, stdin) == NULL) return 0;
    return 0;
}
