//! Loading a GGUF model, with errors that name the file and say what to do about it.

use crate::logging;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use std::io::Read;
use std::path::Path;

const GGUF_MAGIC: &[u8; 4] = b"GGUF";
const FIX: &str = "Fix: run `roxy models verify` and `roxy models fetch` to reinstall it, or point the LLM model setting at a valid .gguf file";

/// Checks the file before llama.cpp sees it, so the common mistakes get a precise message.
pub fn check_file(path: &Path) -> Result<u64, String> {
    let shown = path.display();
    let metadata = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("model file {shown} does not exist. {FIX}"),
        _ => format!("model file {shown} cannot be read: {e}. {FIX}"),
    })?;
    if !metadata.is_file() {
        return Err(format!("model path {shown} is not a file. {FIX}"));
    }
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut file| file.read_exact(&mut magic)).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => format!("model file {shown} is empty or truncated, not a GGUF. {FIX}"),
        _ => format!("model file {shown} cannot be read: {e}. {FIX}"),
    })?;
    if &magic != GGUF_MAGIC {
        return Err(format!(
            "model file {shown} is not a GGUF file (it starts with {magic:02x?}, expected \"GGUF\"); \
             it may be an unfinished download or another format. {FIX}"
        ));
    }
    Ok(metadata.len())
}

pub fn load(backend: &LlamaBackend, path: &Path, n_gpu_layers: u32) -> Result<LlamaModel, String> {
    check_file(path)?;
    let params = LlamaModelParams::default().with_n_gpu_layers(n_gpu_layers);
    logging::clear_recent_errors();
    LlamaModel::load_from_file(backend, path, &params).map_err(|e| {
        let reason = logging::recent_errors().unwrap_or_else(|| e.to_string());
        format!(
            "llama.cpp could not load model file {}: {reason}. The file is probably truncated or corrupt, \
             or its architecture is newer than this build. {FIX}",
            path.display()
        )
    })
}

/// "SmolLM2 135M Instruct (llama, 135M params, 92 MiB)".
pub fn describe(model: &LlamaModel) -> String {
    let meta = |key: &str| model.meta_val_str(key).ok().filter(|v| !v.is_empty());
    let name = meta("general.name").unwrap_or_else(|| "unnamed model".to_owned());
    let arch = meta("general.architecture").unwrap_or_else(|| "unknown architecture".to_owned());
    format!(
        "{name} ({arch}, {} params, {:.0} MiB)",
        human_count(model.n_params()),
        model.size() as f64 / (1024.0 * 1024.0)
    )
}

fn human_count(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.1}B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.0}M", n as f64 / 1e6),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_named_with_the_fix() {
        let err = check_file(Path::new("/nonexistent/roxy/model.gguf")).unwrap_err();
        assert!(err.contains("/nonexistent/roxy/model.gguf") && err.contains("does not exist"), "{err}");
        assert!(err.contains("roxy models fetch"), "{err}");
    }

    #[test]
    fn non_gguf_and_empty_files_are_rejected() {
        let dir = std::env::temp_dir().join(format!("roxy-llm-model-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let html = dir.join("model.gguf");
        std::fs::write(&html, b"<html>404 Not Found</html>").unwrap();
        let err = check_file(&html).unwrap_err();
        assert!(err.contains("is not a GGUF file"), "{err}");
        let empty = dir.join("empty.gguf");
        std::fs::write(&empty, b"").unwrap();
        assert!(check_file(&empty).unwrap_err().contains("empty or truncated"));
        assert!(check_file(&dir).unwrap_err().contains("is not a file"));
        std::fs::write(&html, b"GGUF\x03\x00\x00\x00").unwrap();
        assert_eq!(check_file(&html), Ok(8));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn counts_read_naturally() {
        assert_eq!(human_count(134_515_008), "135M");
        assert_eq!(human_count(7_241_732_096), "7.2B");
        assert_eq!(human_count(999), "999");
    }
}
