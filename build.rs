//! Links espeak-ng's C library (TTS phonemes, `src/tts/espeak.rs`), and lets
//! `scripts/check-macos` select the macOS platform module.
//!
//! Linux: apt `libespeak-ng-dev` puts it on the default search path. macOS: Homebrew's prefix
//! is not searched by default, so add it. `ESPEAK_NG_LIB_DIR` overrides both.

fn main() {
    // `scripts/check-macos` compiles the macOS side of `src/platform` on Linux.
    println!("cargo::rustc-check-cfg=cfg(roxy_check_macos)");
    println!("cargo:rerun-if-env-changed=ROXY_CHECK_OS");
    if std::env::var("ROXY_CHECK_OS").as_deref() == Ok("macos") {
        println!("cargo:rustc-cfg=roxy_check_macos");
    }
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
