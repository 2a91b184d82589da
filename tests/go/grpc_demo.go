// A grpc-go server and client for the end-to-end tests and the HTTP/2 captures.
//
//	grpc_demo server ADDR        serves demo.Greeter on ADDR; prints "listening" once bound
//	grpc_demo client ADDR        one connection to ADDR; commands from stdin, one per line:
//	                             unary NAME | missing | stream N | big N | concurrent N | quit
//	                             each prints one line "ok ..." or "err ..." when done
//	grpc_demo orders ADDR REDIS MYSQL
//	                             serves mall.Order/Get on ADDR (an "rpc" service): request
//	                             ID runs SET and GET req:ID on Redis (redigo, pooled) and
//	                             SELECT 'req:ID' on MySQL (go-sql-driver/mysql) in its handler
//	grpc_demo api PORT RPCADDR REDIS MYSQL
//	                             an "api" service: net/http on 127.0.0.1:PORT, GET /r/ID calls
//	                             mall.Order/Get with ID on one connection to RPCADDR, then runs
//	                             the same Redis and MySQL calls itself
//	grpc_demo h2c ADDR           plain HTTP/2 (h2c, prior knowledge) on ADDR: GET /items/N
//	                             answers 200, anything else 404; prints "listening" once bound
//	grpc_demo h2get ADDR PATH... GETs every PATH at once on one h2c connection to ADDR,
//	                             prints "status PATH CODE" per path, then "done", and exits
//	                             when stdin closes
//	grpc_demo load ADDR SECONDS N
//	                             N goroutines make unary calls on one connection to ADDR for
//	                             SECONDS, then prints "calls C secs S p50_ms X p99_ms Y"
//	                             (the benchmark's gRPC load)
//
// Debian's Go protobuf packages do not marshal with its grpc, so the codec registered under
// the name "proto" hand-encodes messages of one string field (field 1, wire type 2).
//
// Build: GO111MODULE=off GOPATH=/usr/share/gocode go build grpc_demo.go
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/gomodule/redigo/redis"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"
)

type msg struct{ S string }

type codec struct{}

func (codec) Name() string { return "proto" }

func (codec) Marshal(v interface{}) ([]byte, error) {
	m, ok := v.(*msg)
	if !ok {
		return nil, fmt.Errorf("unexpected message type %T", v)
	}
	b := []byte{0x0a}
	n := uint64(len(m.S))
	for n >= 0x80 {
		b = append(b, byte(n)|0x80)
		n >>= 7
	}
	b = append(b, byte(n))
	return append(b, m.S...), nil
}

func (codec) Unmarshal(data []byte, v interface{}) error {
	m, ok := v.(*msg)
	if !ok {
		return fmt.Errorf("unexpected message type %T", v)
	}
	m.S = ""
	if len(data) == 0 {
		return nil
	}
	if data[0] != 0x0a {
		return errors.New("unexpected field")
	}
	var n uint64
	var shift uint
	i := 1
	for ; i < len(data); i++ {
		n |= uint64(data[i]&0x7f) << shift
		shift += 7
		if data[i] < 0x80 {
			i++
			break
		}
	}
	if uint64(len(data)-i) < n {
		return errors.New("short message")
	}
	m.S = string(data[i : i+int(n)])
	return nil
}

func sayHello(_ interface{}, ctx context.Context, dec func(interface{}) error, _ grpc.UnaryServerInterceptor) (interface{}, error) {
	in := new(msg)
	if err := dec(in); err != nil {
		return nil, err
	}
	if in.S == "missing" {
		return nil, status.Error(codes.NotFound, "no such user: missing")
	}
	if strings.HasPrefix(in.S, "big:") {
		return &msg{S: strings.Repeat("y", len(in.S))}, nil
	}
	return &msg{S: "hello " + in.S}, nil
}

func count(_ interface{}, stream grpc.ServerStream) error {
	in := new(msg)
	if err := stream.RecvMsg(in); err != nil {
		return err
	}
	n, err := strconv.Atoi(in.S)
	if err != nil {
		return status.Error(codes.InvalidArgument, "not a number")
	}
	for i := 0; i < n; i++ {
		if err := stream.SendMsg(&msg{S: strconv.Itoa(i)}); err != nil {
			return err
		}
	}
	return nil
}

var desc = grpc.ServiceDesc{
	ServiceName: "demo.Greeter",
	HandlerType: (*interface{})(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "SayHello", Handler: sayHello}},
	Streams:     []grpc.StreamDesc{{StreamName: "Count", Handler: count, ServerStreams: true}},
	Metadata:    "demo.proto",
}

// stores are the Redis and MySQL pools of the api → rpc → MySQL/Redis topology's services.
type stores struct {
	pool *redis.Pool
	db   *sql.DB
}

func openStores(redisPort, mysqlPort string) *stores {
	db, err := sql.Open("mysql", "root@tcp(127.0.0.1:"+mysqlPort+")/shop")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	db.SetMaxIdleConns(32)
	dial := func() (redis.Conn, error) { return redis.Dial("tcp", "127.0.0.1:"+redisPort) }
	return &stores{pool: &redis.Pool{MaxIdle: 32, Dial: dial}, db: db}
}

// touch runs SET and GET req:ID on Redis and SELECT 'req:ID' on MySQL.
func (o *stores) touch(ctx context.Context, id string) error {
	key := "req:" + id
	c := o.pool.Get()
	defer c.Close()
	if _, err := c.Do("SET", key, id); err != nil {
		return err
	}
	if _, err := redis.String(c.Do("GET", key)); err != nil {
		return err
	}
	var got string
	// No arguments: the statement goes as one text query (COM_QUERY), id in the literal.
	return o.db.QueryRowContext(ctx, "SELECT '"+key+"'").Scan(&got)
}

func (o *stores) get(_ interface{}, ctx context.Context, dec func(interface{}) error, _ grpc.UnaryServerInterceptor) (interface{}, error) {
	in := new(msg)
	if err := dec(in); err != nil {
		return nil, err
	}
	if err := o.touch(ctx, in.S); err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return &msg{S: "ok " + in.S}, nil
}

func serveOrders(addr string, redisPort, mysqlPort string) {
	o := openStores(redisPort, mysqlPort)
	orderDesc := grpc.ServiceDesc{
		ServiceName: "mall.Order",
		HandlerType: (*interface{})(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "Get", Handler: o.get}},
		Metadata:    "mall.proto",
	}
	listen(addr, &orderDesc)
}

func serveAPI(port, rpcAddr, redisPort, mysqlPort string) {
	own := openStores(redisPort, mysqlPort)
	cc, err := grpc.Dial(rpcAddr, grpc.WithInsecure(), grpc.WithBlock())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	http.HandleFunc("/r/", func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimPrefix(r.URL.Path, "/r/")
		if _, err := strconv.Atoi(id); err != nil {
			http.NotFound(w, r)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		out := new(msg)
		if err := cc.Invoke(ctx, "/mall.Order/Get", &msg{S: id}, out); err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		if err := own.touch(ctx, id); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Length", "2")
		w.Write([]byte("ok"))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("listening", ln.Addr())
	http.Serve(ln, nil)
}

func serveH2C(addr string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/items/", func(w http.ResponseWriter, r *http.Request) {
		if _, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/items/")); err != nil {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("item"))
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("listening", ln.Addr())
	http.Serve(ln, h2c.NewHandler(mux, &http2.Server{}))
}

func h2get(addr string, paths []string) {
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLS:   func(network, a string, _ *tls.Config) (net.Conn, error) { return net.Dial(network, a) },
	}
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	out := make([]string, len(paths))
	for i, p := range paths {
		wg.Add(1)
		go func(i int, p string) {
			defer wg.Done()
			resp, err := c.Get("http://" + addr + p)
			if err != nil {
				out[i] = "error " + p + " " + err.Error()
				return
			}
			// Read to the end: closing a body early resets its stream (CANCEL).
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			out[i] = "status " + p + " " + strconv.Itoa(resp.StatusCode)
		}(i, p)
	}
	wg.Wait()
	for _, l := range out {
		fmt.Println(l)
	}
	fmt.Println("done")
	// Stays alive until stdin closes (the daemon names the service from this process's
	// environment, which it reads while the process lives).
	bufio.NewReader(os.Stdin).ReadString('\n')
}

func serve(addr string) {
	listen(addr, &desc)
}

func listen(addr string, sd *grpc.ServiceDesc) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s := grpc.NewServer()
	s.RegisterService(sd, struct{}{})
	fmt.Println("listening", lis.Addr())
	if err := s.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func unary(cc *grpc.ClientConn, name string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := new(msg)
	err := cc.Invoke(ctx, "/demo.Greeter/SayHello", &msg{S: name}, out)
	return out.S, err
}

func streamN(cc *grpc.ClientConn, n string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := cc.NewStream(ctx, &desc.Streams[0], "/demo.Greeter/Count")
	if err != nil {
		return 0, err
	}
	if err := st.SendMsg(&msg{S: n}); err != nil {
		return 0, err
	}
	if err := st.CloseSend(); err != nil {
		return 0, err
	}
	got := 0
	for {
		m := new(msg)
		if err := st.RecvMsg(m); err != nil {
			if status.Code(err) == codes.OK || err.Error() == "EOF" {
				return got, nil
			}
			return got, err
		}
		got++
	}
}

func report(what string, err error) {
	if err != nil {
		fmt.Println("err", what, status.Code(err), status.Convert(err).Message())
	} else {
		fmt.Println("ok", what)
	}
}

func client(addr string) {
	cc, err := grpc.Dial(addr, grpc.WithInsecure(), grpc.WithBlock())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer cc.Close()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		arg := ""
		if len(f) > 1 {
			arg = f[1]
		}
		switch f[0] {
		case "unary":
			r, err := unary(cc, arg)
			report("unary "+r, err)
		case "missing":
			_, err := unary(cc, "missing")
			report("missing", err)
		case "big":
			n, _ := strconv.Atoi(arg)
			r, err := unary(cc, "big:"+strings.Repeat("x", n))
			report("big "+strconv.Itoa(len(r)), err)
		case "stream":
			got, err := streamN(cc, arg)
			report("stream "+strconv.Itoa(got), err)
		case "concurrent":
			n, _ := strconv.Atoi(arg)
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					if _, err := unary(cc, "c"+strconv.Itoa(i)); err != nil {
						errs <- err
					}
				}(i)
			}
			wg.Wait()
			close(errs)
			report("concurrent "+arg, <-errs)
		case "quit":
			return
		default:
			fmt.Println("err unknown command", f[0])
		}
	}
}

func load(addr, seconds, workers string) {
	secs, err1 := strconv.ParseFloat(seconds, 64)
	n, err2 := strconv.Atoi(workers)
	if err1 != nil || err2 != nil || n < 1 || secs <= 0 {
		fmt.Fprintln(os.Stderr, "load ADDR SECONDS N: SECONDS > 0, N >= 1")
		os.Exit(2)
	}
	cc, err := grpc.Dial(addr, grpc.WithInsecure(), grpc.WithBlock())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer cc.Close()
	start := time.Now()
	end := start.Add(time.Duration(secs * float64(time.Second)))
	lat := make([][]time.Duration, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// Bounded: at most 10 million calls per worker.
			for k := 0; k < 10000000 && time.Now().Before(end); k++ {
				t := time.Now()
				if _, err := unary(cc, "load"); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				lat[i] = append(lat[i], time.Since(t))
			}
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		fmt.Fprintln(os.Stderr, "no call finished")
		os.Exit(1)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	ms := func(q float64) float64 { return float64(all[int(q*float64(len(all)-1))]) / 1e6 }
	fmt.Printf("calls %d secs %.3f p50_ms %.4f p99_ms %.4f\n", len(all), elapsed, ms(0.5), ms(0.99))
}

func main() {
	encoding.RegisterCodec(codec{})
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: grpc_demo server|client ADDR | orders ADDR REDIS MYSQL | api PORT RPCADDR REDIS MYSQL")
		os.Exit(2)
	}
	switch {
	case os.Args[1] == "server":
		serve(os.Args[2])
	case os.Args[1] == "client":
		client(os.Args[2])
	case os.Args[1] == "orders" && len(os.Args) == 5:
		serveOrders(os.Args[2], os.Args[3], os.Args[4])
	case os.Args[1] == "h2c":
		serveH2C(os.Args[2])
	case os.Args[1] == "h2get":
		h2get(os.Args[2], os.Args[3:])
	case os.Args[1] == "load" && len(os.Args) == 5:
		load(os.Args[2], os.Args[3], os.Args[4])
	case os.Args[1] == "api" && len(os.Args) == 6:
		serveAPI(os.Args[2], os.Args[3], os.Args[4], os.Args[5])
	default:
		os.Exit(2)
	}
}
