"""A Python client on mysqlclient (MySQLdb, which links libmariadb) for tests/tests/uprobes.rs.

Usage: mysqlclient_client.py PORT plain|tls. Prints "ready", waits for a line on stdin, then
connects, runs a query and a failing query, prints "done" and exits at the next line.
"""
import sys

import MySQLdb


def main() -> None:
    port, mode = int(sys.argv[1]), sys.argv[2]
    print("ready", flush=True)
    sys.stdin.readline()
    kwargs = {"ssl_mode": "REQUIRED"} if mode == "tls" else {"ssl_mode": "DISABLED"}
    conn = MySQLdb.connect(host="127.0.0.1", port=port, user="root", passwd="", db="shop", **kwargs)
    cur = conn.cursor()
    cur.execute("SELECT name FROM items WHERE id = %s", (2,))
    cur.fetchall()
    try:
        cur.execute("SELECT * FROM missing_table")
    except MySQLdb.Error:
        pass
    conn.close()
    print("done", flush=True)
    # Stays alive until told (the daemon names the service from this process's environment).
    sys.stdin.readline()


if __name__ == "__main__":
    main()
