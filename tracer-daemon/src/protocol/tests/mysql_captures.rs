//! Expected exchanges of the MySQL captures in `testdata/mysql/`, checked in every
//! segmentation and in both roles.

use super::harness::{Case, check_case};

#[test]
fn capi_stmt() {
    check_case(&Case {
        proto: "mysql",
        name: "capi_stmt",
        client: &[
            "0 mysql PREPARE | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"PREPARE\" db.statement=\"SELECT id, name, score FROM users WHERE id >= ? AND name <> ?\" | err=- @5-6",
            "1 mysql SELECT | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"SELECT\" db.statement=\"SELECT id, name, score FROM users WHERE id >= ? AND name <> ?\" db.mysql.rows=4 | err=- @7-8",
            "2 mysql STMT_RESET | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"STMT_RESET\" | err=- @9-10",
            "3 mysql SELECT | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"SELECT\" db.statement=\"SELECT id, name, score FROM users WHERE id >= ? AND name <> ?\" db.mysql.rows=2 | err=- @11-12",
            "4 mysql STMT_CLOSE | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"STMT_CLOSE\" | err=- @13-13",
            "5 mysql PREPARE | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"PREPARE\" db.statement=\"INSERT INTO users (id, name) VALUES (?, ?)\" | err=- @14-15",
            "6 mysql INSERT | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"INSERT\" db.statement=\"INSERT INTO users (id, name) VALUES (?, ?)\" | err=- @16-17",
            "7 mysql INSERT | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"INSERT\" db.statement=\"INSERT INTO users (id, name) VALUES (?, ?)\" db.mysql.error_code=1062 | err=ERROR 1062 (23000): Duplicate entry ? for key ? @18-19",
            "8 mysql STMT_CLOSE | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"STMT_CLOSE\" | err=- @20-20",
            "9 mysql PREPARE | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"PREPARE\" db.statement=\"SELECT * FROM no_such_table WHERE id = ?\" db.mysql.error_code=1146 | err=ERROR 1146 (42S02): Table ? doesn't exist @21-22",
            "10 mysql DELETE | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"DELETE\" db.statement=\"DELETE FROM users WHERE id = ?\" | err=- @23-24",
            "11 mysql PING | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"PING\" | err=- @25-26",
            "12 mysql INIT_DB | db.system=\"mysql\" db.name=\"inventory\" db.user=\"app\" db.operation=\"INIT_DB\" | err=- @27-28",
            "13 mysql QUIT | db.system=\"mysql\" db.name=\"inventory\" db.user=\"app\" db.operation=\"QUIT\" | err=- @29-29",
        ],
        gap_safe: true,
        pipelinable: false,
    });
}

#[test]
fn cli_queries() {
    check_case(&Case {
        proto: "mysql",
        name: "cli_queries",
        client: &[
            "0 mysql SELECT | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"SELECT\" db.statement=\"SELECT id, name FROM users WHERE name = ?\" db.mysql.rows=1 | err=- @3-4",
            "1 mysql INSERT | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"INSERT\" db.statement=\"INSERT INTO users VALUES (?,?,?,?)\" | err=- @5-6",
            "2 mysql SELEC | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"SELEC\" db.statement=\"SELEC broken\" db.mysql.error_code=1064 | err=ERROR 1064 (42000): You have an error in your SQL syntax; check the manual that corresponds to your MariaDB server version for the right syntax to use near ? at line 1 @7-8",
            "3 mysql QUIT | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"QUIT\" | err=- @9-9",
        ],
        gap_safe: true,
        pipelinable: false,
    });
}

#[test]
fn cli_ssl() {
    check_case(&Case { proto: "mysql", name: "cli_ssl", client: &[], gap_safe: true, pipelinable: false });
}

#[test]
fn pymysql_text() {
    check_case(&Case {
        proto: "mysql",
        name: "pymysql_text",
        client: &[
            "0 mysql SET | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"SET\" db.statement=\"SET NAMES utf8mb4\" | err=- @3-4",
            "1 mysql SELECT | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"SELECT\" db.statement=\"SELECT id, name, email, score FROM users ORDER BY id\" db.mysql.rows=4 | err=- @5-6",
            "2 mysql SELECT | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"SELECT\" db.statement=\"/*traceparent=?*/ SELECT name FROM users WHERE id = ?\" db.mysql.rows=1 | err=- | ctx=4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:1:SqlComment @7-8",
            "3 mysql SELECT | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"SELECT\" db.statement=\"SELECT ? AS one; SELECT ? AS two; UPDATE users SET score = ? WHERE id = ?\" db.mysql.rows=2 | err=- @9-12",
            "4 mysql SELEKT | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"SELEKT\" db.statement=\"SELEKT * FROM users\" db.mysql.error_code=1064 | err=ERROR 1064 (42000): You have an error in your SQL syntax; check the manual that corresponds to your MariaDB server version for the right syntax to use near ? at line 1 @13-14",
            "5 mysql CALL | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"CALL\" db.statement=\"CALL `two_results`()\" db.mysql.rows=3 | err=- @15-18",
            "6 mysql LOAD | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"LOAD\" db.statement=\"LOAD DATA LOCAL INFILE ? INTO TABLE users FIELDS TERMINATED BY ?\" | err=- @19-23",
            "7 mysql DELETE | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"DELETE\" db.statement=\"DELETE FROM users WHERE id >= ?\" | err=- @24-25",
            "8 mysql PING | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"PING\" | err=- @26-27",
            "9 mysql INIT_DB | db.system=\"mysql\" db.name=\"inventory\" db.user=\"app\" db.operation=\"INIT_DB\" | err=- @28-29",
            "10 mysql QUIT | db.system=\"mysql\" db.name=\"inventory\" db.user=\"app\" db.operation=\"QUIT\" | err=- @30-30",
        ],
        gap_safe: true,
        pipelinable: false,
    });
}

#[test]
fn raw_deprecate_eof() {
    check_case(&Case {
        proto: "mysql",
        name: "raw_deprecate_eof",
        client: &[
            "0 mysql SELECT | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"SELECT\" db.statement=\"SELECT id, name, email FROM users ORDER BY id\" db.mysql.rows=4 | err=- @3-4",
            "1 mysql SELECT | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"SELECT\" db.statement=\"SELECT * FROM users WHERE id = ?\" db.mysql.rows=0 | err=- @5-6",
            "2 mysql SELECT | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"SELECT\" db.statement=\"SELECT ? AS one; SELECT ? AS two; DO ?\" db.mysql.rows=2 | err=- @7-8",
            "3 mysql CALL | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"CALL\" db.statement=\"CALL two_results()\" db.mysql.rows=3 | err=- @9-12",
            "4 mysql PREPARE | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"PREPARE\" db.statement=\"SELECT name, score FROM users WHERE id < ?\" | err=- @13-14",
            "5 mysql SELECT | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"SELECT\" db.statement=\"SELECT name, score FROM users WHERE id < ?\" db.mysql.rows=2 | err=- @15-16",
            "6 mysql INSERT | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"INSERT\" db.statement=\"INSERT INTO users VALUES (?, ?, ?)\" db.mysql.error_code=1136 | err=ERROR 1136 (21S01): Column count doesn't match value count at row 1 @17-18",
            "7 mysql PING | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"PING\" | err=- @19-20",
            "8 mysql QUIT | db.system=\"mysql\" db.name=\"shop\" db.user=\"app\" db.operation=\"QUIT\" | err=- @21-21",
        ],
        gap_safe: true,
        pipelinable: false,
    });
}
