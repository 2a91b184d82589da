//! The uprobe symbol table: the C symbol of each traced client-library function and the library
//! family that exports it.

use crate::reader::decode::{LibFunction, Library};

/// Every traced function with its library family (hiredis or the MySQL API) and symbol name.
pub const SYMBOLS: [(LibFunction, Library, &str); 16] = [
    (LibFunction::RedisCommand, Library::Hiredis, "redisCommand"),
    (LibFunction::RedisvCommand, Library::Hiredis, "redisvCommand"),
    (LibFunction::RedisCommandArgv, Library::Hiredis, "redisCommandArgv"),
    (LibFunction::RedisGetReply, Library::Hiredis, "redisGetReply"),
    (LibFunction::RedisAppendCommand, Library::Hiredis, "redisAppendCommand"),
    (LibFunction::RedisAppendCommandArgv, Library::Hiredis, "redisAppendCommandArgv"),
    (LibFunction::RedisAsyncCommand, Library::Hiredis, "redisAsyncCommand"),
    (LibFunction::RedisAsyncCommandArgv, Library::Hiredis, "redisAsyncCommandArgv"),
    (LibFunction::RedisAsyncFormattedCommand, Library::Hiredis, "redisAsyncFormattedCommand"),
    (LibFunction::MysqlRealConnect, Library::Mysqlclient, "mysql_real_connect"),
    (LibFunction::MysqlRealQuery, Library::Mysqlclient, "mysql_real_query"),
    (LibFunction::MysqlQuery, Library::Mysqlclient, "mysql_query"),
    (LibFunction::MysqlSendQuery, Library::Mysqlclient, "mysql_send_query"),
    (LibFunction::MysqlReadQueryResult, Library::Mysqlclient, "mysql_read_query_result"),
    (LibFunction::MysqlStmtPrepare, Library::Mysqlclient, "mysql_stmt_prepare"),
    (LibFunction::MysqlStmtExecute, Library::Mysqlclient, "mysql_stmt_execute"),
];

impl LibFunction {
    /// The C symbol name.
    pub fn symbol(self) -> &'static str {
        SYMBOLS.iter().find(|e| e.0 == self).map_or("?", |e| e.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_has_one_symbol_and_the_right_family() {
        for (f, _) in LibFunction::ALL {
            assert_eq!(SYMBOLS.iter().filter(|e| e.0 == f).count(), 1, "{f:?}");
        }
        for (f, lib, name) in SYMBOLS {
            assert_eq!(f.is_hiredis(), lib == Library::Hiredis, "{name}");
            assert_eq!(f.symbol(), name);
        }
    }
}
