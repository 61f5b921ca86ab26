//! `chronos-tui`: the operator console for a Chronos cluster. A placeholder until the node
//! and its gRPC API exist.

fn main() {
    println!(
        "chronos-tui: the Chronos operator console\n\n\
         usage: chronos-tui [--spawn N | --peers ID=HOST:PORT,...]\n\n\
         The console needs chronosd nodes, which are not built yet."
    );
}
