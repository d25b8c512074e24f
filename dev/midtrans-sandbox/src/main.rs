//! Local stand-in for the Midtrans sandbox. (Implemented with the donations issue.)
fn main() {}
