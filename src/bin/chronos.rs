//! `chronos`: the Chronos command line. Its commands need a running node, which is not built
//! yet; until then this binary only explains its planned usage.

fn main() {
    println!(
        "chronos: the Chronos command line\n\n\
         usage: chronos [--addr HOST:PORT] <exec SQL | shell | status>\n\n\
         The commands talk to chronosd nodes, which are not built yet."
    );
}
