//! Where the dashboard's data comes from: benchmark run directories ([`runs`]), `triage hw`
//! reports ([`hw`]) and a live gateway ([`live`]). Files are read once before the first frame;
//! the live gateway is read by background tasks that send what they see over a channel.

pub mod hw;
pub mod live;
pub mod runs;
