// A Go net/http service for the goroutine-causality tests: `GET /r/<id>` runs `SET req:<id>`
// and `GET req:<id>` on Redis (redigo, pooled) and `SELECT 'req:<id>'` on MySQL
// (go-sql-driver/mysql through database/sql, pooled), then answers "ok". net/http serves each
// connection in a goroutine of its own, and both drivers write to their sockets from the
// goroutine that calls them.
//
// Usage: goroutine_demo -port P -redis RP -mysql MP
// Prints "listening" once the port is open. With -goid, prints the goroutine id of the
// goroutine that serves each request after it ("goid <id> <n>"), for the probe tests.
package main

import (
	"bytes"
	"database/sql"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"

	_ "github.com/go-sql-driver/mysql"
	"github.com/gomodule/redigo/redis"
)

// goid parses the current goroutine's id from its stack header ("goroutine 18 [running]:").
func goid() uint64 {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	buf = bytes.TrimPrefix(buf, []byte("goroutine "))
	n, _ := strconv.ParseUint(string(buf[:bytes.IndexByte(buf, ' ')]), 10, 64)
	return n
}

func main() {
	port := flag.Int("port", 0, "HTTP port on 127.0.0.1")
	redisPort := flag.Int("redis", 0, "Redis port on 127.0.0.1")
	mysqlPort := flag.Int("mysql", 0, "MySQL port on 127.0.0.1")
	printGoid := flag.Bool("goid", false, "print the serving goroutine's id per request")
	flag.Parse()

	pool := &redis.Pool{
		MaxIdle: 32,
		Dial: func() (redis.Conn, error) {
			return redis.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", *redisPort))
		},
	}
	db, err := sql.Open("mysql", fmt.Sprintf("root@tcp(127.0.0.1:%d)/shop", *mysqlPort))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	db.SetMaxIdleConns(32)

	http.HandleFunc("/r/", func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimPrefix(r.URL.Path, "/r/")
		if _, err := strconv.Atoi(id); err != nil {
			http.NotFound(w, r)
			return
		}
		key := "req:" + id
		c := pool.Get()
		defer c.Close()
		if _, err := c.Do("SET", key, id); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		if _, err := redis.String(c.Do("GET", key)); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		var got string
		// No arguments: the statement goes as one text query (COM_QUERY), id in the literal.
		if err := db.QueryRow("SELECT '" + key + "'").Scan(&got); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		if *printGoid {
			fmt.Printf("goid %d %s\n", goid(), id)
		}
		w.Header().Set("Content-Length", "2")
		w.Write([]byte("ok"))
	})
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("listening")
	http.Serve(ln, nil)
}
