//! Audio out. [`AudioSink`] is the seam: [`Speaker`] plays on the default output device with
//! rodio; [`WavSink`] stands in when there is none (or headless) and keeps what would have been
//! heard, in real time, so stopping it mid-reply (barge-in) cuts the recording where the speaker
//! would have gone quiet.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum PlaybackError {
    #[error("no audio output device could be opened ({0}). Fix: connect or select a speaker, or pass --output FILE.wav to write the replies to a file")]
    NoDevice(String),
}

pub trait AudioSink: Send + Sync {
    /// Queues mono samples at `sample_rate` after what is already queued.
    fn play(&self, samples: &[f32], sample_rate: u32);
    /// Silences at once and drops everything queued.
    fn stop(&self);
    /// Whether anything is still queued or sounding.
    fn is_playing(&self) -> bool;
}

/// The default output device, via rodio. The device's stream lives on its own thread (it is
/// not `Send` on every platform); the sink is shared.
pub struct Speaker {
    sink: Arc<rodio::Sink>,
    _keep: mpsc::Sender<()>,
}

impl Speaker {
    pub fn open_default() -> Result<Speaker, PlaybackError> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (keep_tx, keep_rx) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("roxy-speaker".into())
            .spawn(move || {
                crate::platform::quiet_audio_backend();
                match rodio::OutputStreamBuilder::open_default_stream() {
                    Ok(mut stream) => {
                        stream.log_on_drop(false);
                        let sink = Arc::new(rodio::Sink::connect_new(stream.mixer()));
                        let _ = ready_tx.send(Ok(sink));
                        // Holds the stream until the Speaker is dropped.
                        let _ = keep_rx.recv();
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                    }
                }
            })
            .map_err(|e| PlaybackError::NoDevice(e.to_string()))?;
        let sink = ready_rx.recv().map_err(|e| PlaybackError::NoDevice(e.to_string()))?.map_err(PlaybackError::NoDevice)?;
        Ok(Speaker { sink, _keep: keep_tx })
    }
}

impl AudioSink for Speaker {
    fn play(&self, samples: &[f32], sample_rate: u32) {
        self.sink.append(rodio::buffer::SamplesBuffer::new(1, sample_rate, samples.to_vec()));
        self.sink.play();
    }

    fn stop(&self) {
        self.sink.clear();
    }

    fn is_playing(&self) -> bool {
        !self.sink.empty()
    }
}

/// Plays into memory at wall-clock pace: what a listener would have heard is kept, and
/// [`AudioSink::stop`] cuts it at the current moment.
pub struct WavSink {
    state: Mutex<WavState>,
}

struct WavState {
    sample_rate: u32,
    heard: Vec<f32>,
    /// Queued audio and when its playback started (None: nothing playing).
    queued: Vec<f32>,
    started: Option<Instant>,
}

impl WavSink {
    pub fn new(sample_rate: u32) -> WavSink {
        WavSink { state: Mutex::new(WavState { sample_rate, heard: Vec::new(), queued: Vec::new(), started: None }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WavState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Everything heard so far (queued audio counts once it has had time to play).
    pub fn heard(&self) -> Vec<f32> {
        let mut s = self.lock();
        s.settle(Instant::now());
        s.heard.clone()
    }

    pub fn write(&self, path: &Path) -> Result<(), crate::audio::wav::WavError> {
        let rate = self.lock().sample_rate;
        crate::audio::wav::write_mono(path, &self.heard(), rate)
    }
}

impl WavState {
    /// Moves what has finished playing by `now` from `queued` to `heard`.
    fn settle(&mut self, now: Instant) {
        let Some(started) = self.started else { return };
        let played = ((now - started).as_secs_f64() * self.sample_rate as f64) as usize;
        if played >= self.queued.len() {
            self.heard.append(&mut self.queued);
            self.started = None;
        }
    }

    fn cut(&mut self, now: Instant) {
        if let Some(started) = self.started.take() {
            let played = (((now - started).as_secs_f64() * self.sample_rate as f64) as usize).min(self.queued.len());
            self.heard.extend_from_slice(&self.queued[..played]);
            self.queued.clear();
        }
    }
}

impl AudioSink for WavSink {
    fn play(&self, samples: &[f32], sample_rate: u32) {
        let mut s = self.lock();
        let now = Instant::now();
        s.settle(now);
        let samples = if sample_rate == s.sample_rate { samples.to_vec() } else { crate::audio::resample::resample_mono(samples, sample_rate, s.sample_rate).unwrap_or_default() };
        if s.started.is_none() {
            s.started = Some(now);
        }
        s.queued.extend_from_slice(&samples);
    }

    fn stop(&self) {
        self.lock().cut(Instant::now());
    }

    fn is_playing(&self) -> bool {
        let mut s = self.lock();
        s.settle(Instant::now());
        s.started.is_some()
    }
}

/// Waits until `sink` has played everything, or `give_up` passes.
pub fn wait_until_quiet(sink: &dyn AudioSink, give_up: Duration) {
    let until = Instant::now() + give_up;
    while sink.is_playing() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wav_sink_plays_in_real_time_and_stop_cuts_it() {
        let sink = WavSink::new(1000);
        sink.play(&vec![0.5; 1000], 1000); // one second
        assert!(sink.is_playing());
        std::thread::sleep(Duration::from_millis(200));
        sink.stop();
        assert!(!sink.is_playing());
        let heard = sink.heard().len();
        assert!((150..600).contains(&heard), "about 0.2 s of 1 s was heard, got {heard} samples");
        sink.play(&[0.1; 50], 1000);
        wait_until_quiet(&sink, Duration::from_secs(2));
        assert_eq!(sink.heard().len(), heard + 50);
    }
}
