//! `chronosd`: the Chronos node. The replicated node (Raft + gRPC) is not wired yet; until it
//! is, this binary only explains its planned usage.

fn main() {
    println!(
        "chronosd: the Chronos node\n\n\
         usage: chronosd [--id ID] [--listen HOST:PORT] [--peers ID=HOST:PORT,...] [--data-dir DIR]\n\n\
         The replicated node is not built yet: the SQL engine (src/sql) and storage (src/storage)\n\
         are, and can be used as a library (chronos::sql::Database)."
    );
}
