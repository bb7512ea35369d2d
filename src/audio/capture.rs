//! Live microphone capture: any device, rate, channel count and sample format in; 16 kHz mono
//! f32 out, as [`CaptureEvent`]s on a channel.
//!
//! The cpal callback only downmixes into a lock-free ring buffer (no locks, no allocation); a
//! capture thread owns the stream, drains the ring, resamples, watches for a silent device
//! (macOS delivers zeros when microphone access is denied) and reopens a device that went away.

use super::resample::StreamResampler;
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SizedSample};
use ringbuf::traits::{Consumer, Producer, Split};
use ringbuf::HeapRb;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const SAMPLE_RATE: u32 = 16_000;
/// How often the capture thread drains the ring: 20 ms keeps latency far below a VAD frame.
const POLL: Duration = Duration::from_millis(20);
/// Ring capacity in seconds of native audio: room for a long stall of the capture thread.
const RING_SECONDS: usize = 2;
/// Exact zeros for this long mean a muted or permission-blocked device, not a quiet room.
const SILENT_AFTER: Duration = Duration::from_secs(2);
/// Wait between attempts to reopen a lost device.
const REOPEN_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("no microphone found{}. Fix: connect one (on macOS allow Roxy under System Settings → Privacy & Security → Microphone), or use a WAV file (`--input FILE.wav`)", .device.as_ref().map(|d| format!(" named {d:?}")).unwrap_or_default())]
    NoDevice { device: Option<String> },
    #[error("the microphone {device:?} cannot be opened: {message}. Fix: close other apps using it, pick another device in settings, or check `roxy doctor`")]
    Open { device: String, message: String },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceFormat {
    pub device: String,
    pub sample_rate: u32,
    pub channels: u16,
    pub sample_format: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CaptureEvent {
    /// The device is open (again); audio follows.
    Started(DeviceFormat),
    /// 16 kHz mono samples, in order.
    Audio(Vec<f32>),
    /// The device has delivered only exact zeros for `ms`: muted, or access denied.
    SilentInput { ms: u64 },
    /// Samples were lost because the capture thread fell behind.
    Overrun { dropped: u64 },
    /// The device failed or disappeared; it is reopened when it comes back.
    DeviceLost { message: String },
}

/// An open microphone. Dropping it stops capture.
pub struct Microphone {
    events: Receiver<CaptureEvent>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    format: DeviceFormat,
}

impl Microphone {
    /// Opens `device` (by name) or the default input. Fails at once when there is none;
    /// later failures arrive as [`CaptureEvent::DeviceLost`].
    pub fn open(device: Option<&str>) -> Result<Microphone, CaptureError> {
        Microphone::start(device, false)
    }

    /// Like [`Microphone::open`], but a microphone that is not there yet is not an error: a
    /// [`CaptureEvent::DeviceLost`] says so, and capture starts ([`CaptureEvent::Started`]) when
    /// the device appears. Until then [`Microphone::format`] has `sample_rate` 0.
    pub fn open_or_wait(device: Option<&str>) -> Microphone {
        match Microphone::start(device, true) {
            Ok(mic) => mic,
            // Only a dead capture thread gets here; it cannot have opened anything.
            Err(e) => {
                let (tx, events) = mpsc::channel();
                let _ = tx.send(CaptureEvent::DeviceLost { message: e.to_string() });
                Microphone { events, stop: Arc::new(AtomicBool::new(true)), thread: None, format: waiting_format(device) }
            }
        }
    }

    fn start(device: Option<&str>, wait: bool) -> Result<Microphone, CaptureError> {
        let (tx, events) = mpsc::channel();
        let (opened_tx, opened_rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let wanted = device.map(str::to_string);
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("roxy-capture".into())
                .spawn(move || capture_thread(wanted, wait, tx, opened_tx, stop))
                .expect("spawning the capture thread")
        };
        match opened_rx.recv() {
            Ok(Ok(format)) => Ok(Microphone { events, stop, thread: Some(thread), format }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(CaptureError::Open { device: device.unwrap_or("default").into(), message: "the capture thread stopped".into() })
            }
        }
    }

    /// The device's format when it was opened (see [`Microphone::open_or_wait`] for a device
    /// that was not there yet); [`CaptureEvent::Started`] carries the format of each reopen.
    pub fn format(&self) -> &DeviceFormat {
        &self.format
    }

    pub fn events(&self) -> &Receiver<CaptureEvent> {
        &self.events
    }
}

impl Drop for Microphone {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One open cpal stream and the consumer end of its ring.
struct Open {
    _stream: cpal::Stream,
    ring: ringbuf::HeapCons<f32>,
    failed: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    resampler: StreamResampler,
    format: DeviceFormat,
}

fn waiting_format(device: Option<&str>) -> DeviceFormat {
    DeviceFormat { device: device.unwrap_or("default").into(), sample_rate: 0, channels: 0, sample_format: "none".into() }
}

fn find_device(host: &cpal::Host, wanted: Option<&str>) -> Option<cpal::Device> {
    match wanted {
        None => host.default_input_device(),
        Some(name) => host.input_devices().ok()?.find(|d| d.name().is_ok_and(|n| n == name)),
    }
}

fn open_stream(wanted: Option<&str>) -> Result<Open, CaptureError> {
    crate::platform::quiet_audio_backend();
    let host = cpal::default_host();
    let device = find_device(&host, wanted).ok_or(CaptureError::NoDevice { device: wanted.map(str::to_string) })?;
    let name = device.name().unwrap_or_else(|_| "(unnamed)".into());
    let open_err = |message: String| CaptureError::Open { device: name.clone(), message };
    let supported = device.default_input_config().map_err(|e| match e {
        cpal::DefaultStreamConfigError::DeviceNotAvailable => CaptureError::NoDevice { device: wanted.map(str::to_string) },
        other => open_err(other.to_string()),
    })?;
    let format = DeviceFormat {
        device: name.clone(),
        sample_rate: supported.sample_rate().0,
        channels: supported.channels(),
        sample_format: supported.sample_format().to_string(),
    };
    let config: cpal::StreamConfig = supported.config();
    let (producer, ring) = HeapRb::<f32>::new(format.sample_rate as usize * RING_SECONDS).split();
    let failed = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicU64::new(0));
    let stream = match supported.sample_format() {
        cpal::SampleFormat::F32 => build::<f32>(&device, &config, producer, &failed, &dropped),
        cpal::SampleFormat::I16 => build::<i16>(&device, &config, producer, &failed, &dropped),
        cpal::SampleFormat::U16 => build::<u16>(&device, &config, producer, &failed, &dropped),
        cpal::SampleFormat::I32 => build::<i32>(&device, &config, producer, &failed, &dropped),
        cpal::SampleFormat::U8 => build::<u8>(&device, &config, producer, &failed, &dropped),
        cpal::SampleFormat::I8 => build::<i8>(&device, &config, producer, &failed, &dropped),
        cpal::SampleFormat::F64 => build::<f64>(&device, &config, producer, &failed, &dropped),
        other => return Err(open_err(format!("sample format {other} is not supported"))),
    }
    .map_err(|e| open_err(e.to_string()))?;
    stream.play().map_err(|e| open_err(e.to_string()))?;
    let resampler = StreamResampler::new(format.sample_rate, SAMPLE_RATE).map_err(|e| open_err(e.to_string()))?;
    Ok(Open { _stream: stream, ring, failed, dropped, resampler, format })
}

fn build<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    mut producer: ringbuf::HeapProd<f32>,
    failed: &Arc<AtomicBool>,
    dropped: &Arc<AtomicU64>,
) -> Result<cpal::Stream, cpal::BuildStreamError>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let channels = usize::from(config.channels.max(1));
    let dropped = dropped.clone();
    let failed = failed.clone();
    device.build_input_stream(
        config,
        // Real-time thread: downmix straight into the ring, nothing else.
        move |data: &[T], _: &cpal::InputCallbackInfo| {
            for frame in data.chunks(channels) {
                let sum: f32 = frame.iter().map(|&s| <f32 as FromSample<T>>::from_sample_(s)).sum();
                if producer.try_push(sum / channels as f32).is_err() {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        },
        move |error| {
            tracing::warn!("microphone stream error: {error}");
            failed.store(true, Ordering::Relaxed);
        },
        None,
    )
}

fn capture_thread(
    wanted: Option<String>,
    wait: bool,
    tx: Sender<CaptureEvent>,
    opened: Sender<Result<DeviceFormat, CaptureError>>,
    stop: Arc<AtomicBool>,
) {
    let mut current = match open_stream(wanted.as_deref()) {
        Ok(open) => {
            let _ = opened.send(Ok(open.format.clone()));
            let _ = tx.send(CaptureEvent::Started(open.format.clone()));
            Some(open)
        }
        Err(e) if wait => {
            let _ = opened.send(Ok(waiting_format(wanted.as_deref())));
            let _ = tx.send(CaptureEvent::DeviceLost { message: e.to_string() });
            None
        }
        Err(e) => {
            let _ = opened.send(Err(e));
            return;
        }
    };
    let mut buf = vec![0.0f32; 8192];
    let mut zeros_since: Option<Instant> = None;
    let mut silent_reported = false;
    let mut last_attempt = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(POLL);
        let Some(open) = current.as_mut() else {
            if last_attempt.elapsed() >= REOPEN_EVERY {
                last_attempt = Instant::now();
                crate::platform::reload_audio_config();
                if let Ok(open) = open_stream(wanted.as_deref()) {
                    zeros_since = None;
                    silent_reported = false;
                    let _ = tx.send(CaptureEvent::Started(open.format.clone()));
                    current = Some(open);
                }
            }
            continue;
        };
        if open.failed.load(Ordering::Relaxed) {
            let _ = tx.send(CaptureEvent::DeviceLost { message: format!("{} stopped delivering audio", open.format.device) });
            current = None;
            last_attempt = Instant::now();
            continue;
        }
        let dropped = open.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let _ = tx.send(CaptureEvent::Overrun { dropped });
        }
        let mut native = Vec::new();
        loop {
            let n = open.ring.pop_slice(&mut buf);
            if n == 0 {
                break;
            }
            native.extend_from_slice(&buf[..n]);
        }
        if native.is_empty() {
            continue;
        }
        if native.iter().all(|&s| s == 0.0) {
            let since = *zeros_since.get_or_insert_with(Instant::now);
            if !silent_reported && since.elapsed() >= SILENT_AFTER {
                silent_reported = true;
                let _ = tx.send(CaptureEvent::SilentInput { ms: since.elapsed().as_millis() as u64 });
            }
        } else {
            zeros_since = None;
            silent_reported = false;
        }
        match open.resampler.push(&native) {
            Ok(out) if !out.is_empty() => {
                if tx.send(CaptureEvent::Audio(out)).is_err() {
                    return; // nobody listens any more
                }
            }
            Ok(_) => {}
            Err(e) => {
                let _ = tx.send(CaptureEvent::DeviceLost { message: e.to_string() });
                current = None;
            }
        }
    }
}
