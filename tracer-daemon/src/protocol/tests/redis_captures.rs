//! Expected exchanges of the Redis captures in `testdata/redis/`, checked in every
//! segmentation and in both roles.

use super::harness::{Case, check_case};

#[test]
fn cli_basic() {
    check_case(&Case {
        proto: "redis",
        name: "cli_basic",
        client: &[
            "0 redis COMMAND DOCS | db.system=\"redis\" db.operation=\"COMMAND DOCS\" db.statement=\"COMMAND DOCS\" | err=- @0-3",
            "1 redis PING | db.system=\"redis\" db.operation=\"PING\" db.statement=\"PING\" | err=- @4-5",
            "2 redis SET | db.system=\"redis\" db.operation=\"SET\" db.statement=\"SET user:1 ?\" | err=- @6-7",
            "3 redis GET | db.system=\"redis\" db.operation=\"GET\" db.statement=\"GET user:1\" | err=- @8-9",
            "4 redis GET | db.system=\"redis\" db.operation=\"GET\" db.statement=\"GET user:404\" | err=- @10-11",
            "5 redis INCR | db.system=\"redis\" db.operation=\"INCR\" db.statement=\"INCR visits\" | err=- @12-13",
            "6 redis RPUSH | db.system=\"redis\" db.operation=\"RPUSH\" db.statement=\"RPUSH list ? ? ?\" | err=- @14-15",
            "7 redis LRANGE | db.system=\"redis\" db.operation=\"LRANGE\" db.statement=\"LRANGE list ? ?\" | err=- @16-17",
            "8 redis HSET | db.system=\"redis\" db.operation=\"HSET\" db.statement=\"HSET profile:1 ? ? ? ?\" | err=- @18-19",
            "9 redis HGETALL | db.system=\"redis\" db.operation=\"HGETALL\" db.statement=\"HGETALL profile:1\" | err=- @20-21",
            "10 redis CLIENT SETNAME | db.system=\"redis\" db.operation=\"CLIENT SETNAME\" db.statement=\"CLIENT SETNAME tracer-test\" | err=- @22-23",
            "11 redis CONFIG GET | db.system=\"redis\" db.operation=\"CONFIG GET\" db.statement=\"CONFIG GET maxmemory\" | err=- @24-25",
            "12 redis LPUSH | db.system=\"redis\" db.operation=\"LPUSH\" db.statement=\"LPUSH user:1 ?\" | err=WRONGTYPE Operation against a key holding the wrong kind of value @26-27",
            "13 redis MULTI | db.system=\"redis\" db.operation=\"MULTI\" db.statement=\"MULTI\" | err=- @28-29",
            "14 redis SET | db.system=\"redis\" db.operation=\"SET\" db.statement=\"SET counter ?\" | err=- @30-31",
            "15 redis INCRBY | db.system=\"redis\" db.operation=\"INCRBY\" db.statement=\"INCRBY counter ?\" | err=- @32-33",
            "16 redis EXEC | db.system=\"redis\" db.operation=\"EXEC\" db.statement=\"EXEC\" | err=- @34-35",
            "17 redis DEL | db.system=\"redis\" db.operation=\"DEL\" db.statement=\"DEL user:1 ? ? ? ?\" | err=- @36-37",
            "18 redis AUTH | db.system=\"redis\" db.operation=\"AUTH\" db.statement=\"AUTH ?\" | err=ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct? @38-39",
        ],
        gap_safe: false,
        pipelinable: true,
    });
}

#[test]
fn cli_pipe() {
    check_case(&Case {
        proto: "redis",
        name: "cli_pipe",
        client: &[
            "0 redis SET | db.system=\"redis\" db.operation=\"SET\" db.statement=\"SET pipe:1 ?\" | err=- @0-2",
            "1 redis SET | db.system=\"redis\" db.operation=\"SET\" db.statement=\"SET pipe:2 ?\" | err=- @0-2",
            "2 redis MGET | db.system=\"redis\" db.operation=\"MGET\" db.statement=\"MGET pipe:1 ? ?\" | err=- @0-2",
            "3 redis EXPIRE | db.system=\"redis\" db.operation=\"EXPIRE\" db.statement=\"EXPIRE pipe:1 ?\" | err=- @0-2",
            "4 redis TTL | db.system=\"redis\" db.operation=\"TTL\" db.statement=\"TTL pipe:1\" | err=- @0-2",
            "5 redis DEL | db.system=\"redis\" db.operation=\"DEL\" db.statement=\"DEL pipe:1 ?\" | err=- @0-2",
            "6 redis ECHO | db.system=\"redis\" db.operation=\"ECHO\" db.statement=\"ECHO ?\" | err=- @1-2",
        ],
        gap_safe: true,
        pipelinable: true,
    });
}

#[test]
fn raw_large_value() {
    check_case(&Case {
        proto: "redis",
        name: "raw_large_value",
        client: &[
            "0 redis SET | db.system=\"redis\" db.operation=\"SET\" db.statement=\"SET big ?\" | err=- @0-2",
            "1 redis GET | db.system=\"redis\" db.operation=\"GET\" db.statement=\"GET big\" | err=- @3-5",
            "2 redis STRLEN | db.system=\"redis\" db.operation=\"STRLEN\" db.statement=\"STRLEN big\" | err=- @6-7",
            "3 redis DEL | db.system=\"redis\" db.operation=\"DEL\" db.statement=\"DEL big\" | err=- @8-9",
        ],
        gap_safe: true,
        pipelinable: true,
    });
}

#[test]
fn raw_pipeline() {
    check_case(&Case {
        proto: "redis",
        name: "raw_pipeline",
        client: &[
            "0 redis SET | db.system=\"redis\" db.operation=\"SET\" db.statement=\"SET k1 ?\" | err=- @0-1",
            "1 redis GET | db.system=\"redis\" db.operation=\"GET\" db.statement=\"GET k1\" | err=- @0-1",
            "2 redis INCR | db.system=\"redis\" db.operation=\"INCR\" db.statement=\"INCR n\" | err=- @0-1",
            "3 redis PING | db.system=\"redis\" db.operation=\"PING\" db.statement=\"PING\" | err=- @0-1",
            "4 redis SET | db.system=\"redis\" db.operation=\"SET\" db.statement=\"SET inline:key ?\" | err=- @0-1",
            "5 redis GET | db.system=\"redis\" db.operation=\"GET\" db.statement=\"GET inline:key\" | err=- @0-1",
            "6 redis DEL | db.system=\"redis\" db.operation=\"DEL\" db.statement=\"DEL k1 ? ?\" | err=- @0-1",
            "7 redis QUIT | db.system=\"redis\" db.operation=\"QUIT\" db.statement=\"QUIT\" | err=- @2-3",
        ],
        gap_safe: true,
        pipelinable: true,
    });
}

#[test]
fn raw_pubsub() {
    check_case(&Case {
        proto: "redis",
        name: "raw_pubsub",
        client: &[
            "0 redis SUBSCRIBE | db.system=\"redis\" db.operation=\"SUBSCRIBE\" db.statement=\"SUBSCRIBE news ?\" | err=- @0-1",
            "1 redis PING | db.system=\"redis\" db.operation=\"PING\" db.statement=\"PING\" | err=- @3-4",
            "2 redis UNSUBSCRIBE | db.system=\"redis\" db.operation=\"UNSUBSCRIBE\" db.statement=\"UNSUBSCRIBE\" | err=- @5-6",
            "3 redis PING | db.system=\"redis\" db.operation=\"PING\" db.statement=\"PING\" | err=- @7-8",
        ],
        gap_safe: true,
        pipelinable: true,
    });
}

#[test]
fn raw_resp3() {
    check_case(&Case {
        proto: "redis",
        name: "raw_resp3",
        client: &[
            "0 redis HELLO | db.system=\"redis\" db.operation=\"HELLO\" db.statement=\"HELLO 3\" | err=- @0-1",
            "1 redis HSET | db.system=\"redis\" db.operation=\"HSET\" db.statement=\"HSET h3 ? ? ? ?\" | err=- @2-3",
            "2 redis HGETALL | db.system=\"redis\" db.operation=\"HGETALL\" db.statement=\"HGETALL h3\" | err=- @4-5",
            "3 redis SADD | db.system=\"redis\" db.operation=\"SADD\" db.statement=\"SADD s3 ? ?\" | err=- @6-7",
            "4 redis SMEMBERS | db.system=\"redis\" db.operation=\"SMEMBERS\" db.statement=\"SMEMBERS s3\" | err=- @8-9",
            "5 redis GET | db.system=\"redis\" db.operation=\"GET\" db.statement=\"GET missing\" | err=- @10-11",
            "6 redis ZADD | db.system=\"redis\" db.operation=\"ZADD\" db.statement=\"ZADD z3 ? ?\" | err=- @12-13",
            "7 redis ZSCORE | db.system=\"redis\" db.operation=\"ZSCORE\" db.statement=\"ZSCORE z3 ?\" | err=- @14-15",
            "8 redis DEBUG PROTOCOL | db.system=\"redis\" db.operation=\"DEBUG PROTOCOL\" db.statement=\"DEBUG PROTOCOL bignum\" | err=- @16-17",
            "9 redis DEBUG PROTOCOL | db.system=\"redis\" db.operation=\"DEBUG PROTOCOL\" db.statement=\"DEBUG PROTOCOL true\" | err=- @18-19",
            "10 redis DEBUG PROTOCOL | db.system=\"redis\" db.operation=\"DEBUG PROTOCOL\" db.statement=\"DEBUG PROTOCOL verbatim\" | err=- @20-21",
            "11 redis DEBUG PROTOCOL | db.system=\"redis\" db.operation=\"DEBUG PROTOCOL\" db.statement=\"DEBUG PROTOCOL attrib\" | err=- @22-23",
            "12 redis DEBUG PROTOCOL | db.system=\"redis\" db.operation=\"DEBUG PROTOCOL\" db.statement=\"DEBUG PROTOCOL null\" | err=- @24-25",
            "13 redis DEBUG PROTOCOL | db.system=\"redis\" db.operation=\"DEBUG PROTOCOL\" db.statement=\"DEBUG PROTOCOL double\" | err=- @26-27",
            "14 redis DEBUG PROTOCOL | db.system=\"redis\" db.operation=\"DEBUG PROTOCOL\" db.statement=\"DEBUG PROTOCOL push\" | err=- @28-29",
            "15 redis CLIENT TRACKING | db.system=\"redis\" db.operation=\"CLIENT TRACKING\" db.statement=\"CLIENT TRACKING on\" | err=- @30-31",
            "16 redis GET | db.system=\"redis\" db.operation=\"GET\" db.statement=\"GET tracked\" | err=- @32-33",
            "17 redis SET | db.system=\"redis\" db.operation=\"SET\" db.statement=\"SET tracked ?\" | err=- @34-35",
            "18 redis INCR | db.system=\"redis\" db.operation=\"INCR\" db.statement=\"INCR h3\" | err=WRONGTYPE Operation against a key holding the wrong kind of value @36-37",
            "19 redis DEL | db.system=\"redis\" db.operation=\"DEL\" db.statement=\"DEL h3 ? ? ?\" | err=- @38-39",
        ],
        gap_safe: true,
        pipelinable: true,
    });
}

#[test]
fn raw_resp3_pubsub() {
    check_case(&Case {
        proto: "redis",
        name: "raw_resp3_pubsub",
        client: &[
            "0 redis HELLO | db.system=\"redis\" db.operation=\"HELLO\" db.statement=\"HELLO 3\" | err=- @0-1",
            "1 redis SUBSCRIBE | db.system=\"redis\" db.operation=\"SUBSCRIBE\" db.statement=\"SUBSCRIBE news\" | err=- @2-3",
            "2 redis GET | db.system=\"redis\" db.operation=\"GET\" db.statement=\"GET user:404\" | err=- @5-6",
            "3 redis UNSUBSCRIBE | db.system=\"redis\" db.operation=\"UNSUBSCRIBE\" db.statement=\"UNSUBSCRIBE news\" | err=- @7-8",
        ],
        gap_safe: true,
        pipelinable: true,
    });
}
