//! Roxy's engine: every stage of the voice loop, headless and testable on any OS.
//! The menu-bar shell (`src-tauri/`) and the CLI (`src/main.rs`) are thin adapters over it.

pub mod api;
pub mod audio;
pub mod bench;
pub mod brain;
pub mod config;
pub mod coordinator;
pub mod doctor;
pub mod listen;
pub mod live;
pub mod llm;
pub mod logging;
pub mod metrics;
pub mod memory;
pub mod models;
pub mod onnx;
pub mod paths;
pub mod platform;
pub mod presets;
pub mod stt;
pub mod tts;
pub mod vad;
pub mod voice_loop;
pub mod wake;
