/* The prepared-statement client recorded as capi_stmt.cap by record.py: MariaDB Connector/C
 * over TCP to 127.0.0.1:<argv[1]> as user app; exits non-zero on the first unexpected failure. */
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(MYSQL *m, const char *what) {
    fprintf(stderr, "%s: %s\n", what, mysql_error(m));
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    MYSQL *m = mysql_init(NULL);
    my_bool off = 0;
    mysql_optionsv(m, MYSQL_OPT_SSL_ENFORCE, &off);
    mysql_optionsv(m, MYSQL_DEFAULT_AUTH, "caching_sha2_password");
    if (!mysql_real_connect(m, "127.0.0.1", "app", "app-secret", "shop", (unsigned)atoi(argv[1]), NULL,
                            CLIENT_MULTI_RESULTS))
        die(m, "connect");

    MYSQL_STMT *sel = mysql_stmt_init(m);
    const char *q = "SELECT id, name, score FROM users WHERE id >= ? AND name <> ?";
    if (mysql_stmt_prepare(sel, q, strlen(q))) die(m, "prepare");
    int min_id = 1;
    char name[] = "nobody";
    unsigned long name_len = sizeof name - 1;
    MYSQL_BIND p[2];
    memset(p, 0, sizeof p);
    p[0].buffer_type = MYSQL_TYPE_LONG;
    p[0].buffer = &min_id;
    p[1].buffer_type = MYSQL_TYPE_STRING;
    p[1].buffer = name;
    p[1].length = &name_len;
    if (mysql_stmt_bind_param(sel, p)) die(m, "bind");
    if (mysql_stmt_execute(sel)) die(m, "execute");
    if (mysql_stmt_store_result(sel)) die(m, "store");
    mysql_stmt_free_result(sel);
    if (mysql_stmt_reset(sel)) die(m, "reset");
    min_id = 3;
    if (mysql_stmt_execute(sel)) die(m, "execute 2");
    if (mysql_stmt_store_result(sel)) die(m, "store 2");
    mysql_stmt_free_result(sel);
    mysql_stmt_close(sel);

    MYSQL_STMT *ins = mysql_stmt_init(m);
    const char *iq = "INSERT INTO users (id, name) VALUES (?, 'temp')";
    if (mysql_stmt_prepare(ins, iq, strlen(iq))) die(m, "prepare insert");
    int id = 50;
    MYSQL_BIND ip;
    memset(&ip, 0, sizeof ip);
    ip.buffer_type = MYSQL_TYPE_LONG;
    ip.buffer = &id;
    if (mysql_stmt_bind_param(ins, &ip)) die(m, "bind insert");
    if (mysql_stmt_execute(ins)) die(m, "execute insert");
    if (mysql_stmt_execute(ins) == 0) die(m, "duplicate insert succeeded");
    mysql_stmt_close(ins);

    MYSQL_STMT *bad = mysql_stmt_init(m);
    const char *bq = "SELECT * FROM no_such_table WHERE id = ?";
    if (mysql_stmt_prepare(bad, bq, strlen(bq)) == 0) die(m, "bad prepare succeeded");
    mysql_stmt_close(bad);

    if (mysql_query(m, "DELETE FROM users WHERE id = 50")) die(m, "delete");
    if (mysql_ping(m)) die(m, "ping");
    if (mysql_select_db(m, "inventory")) die(m, "select_db");
    mysql_close(m);
    return 0;
}
