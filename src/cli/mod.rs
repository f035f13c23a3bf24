//! The subcommands of the `peerkeeper` command, one file each. The command is thin:
//! argument parsing and output; the work is the library's.

pub mod demo;
pub mod node;
pub mod simulate;
