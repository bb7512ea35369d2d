//! Links espeak-ng's C library (TTS phonemes, `src/tts/espeak.rs`).
//!
//! Linux: apt `libespeak-ng-dev` puts it on the default search path. macOS: Homebrew's prefix
//! is not searched by default, so add it. `ESPEAK_NG_LIB_DIR` overrides both.

fn main() {
    println!("cargo:rerun-if-env-changed=ESPEAK_NG_LIB_DIR");
    if let Some(dir) = std::env::var_os("ESPEAK_NG_LIB_DIR").filter(|d| !d.is_empty()) {
        println!("cargo:rustc-link-search=native={}", std::path::Path::new(&dir).display());
    } else if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("macos") {
        for dir in ["/opt/homebrew/lib", "/usr/local/lib"] {
            if std::path::Path::new(dir).join("libespeak-ng.dylib").exists() {
                println!("cargo:rustc-link-search=native={dir}");
            }
        }
    }
    println!("cargo:rustc-link-lib=dylib=espeak-ng");
}
