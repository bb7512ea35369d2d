//! Audio in and out: device discovery (here), capture and playback.

pub mod capture;
pub mod devices;
pub mod playback;
pub mod resample;
pub mod wav;
