//! Backend replies: the pass-through [`ReplyScanner`], and [`decode`] into
//! an owned [`Value`] for the paths that merge replies.

mod decode;
mod scanner;
mod value;

pub use decode::decode;
pub use scanner::{ReplyFrame, ReplyScanner};
pub use value::Value;

#[cfg(test)]
mod resume_tests;
