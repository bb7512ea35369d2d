//! The menu-bar icon: one icon per loop state, the menu, and the panel under the icon.

use crate::engine::{self, Action, LoopState, StateEvent};
use crate::Shell;
use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Emitter, Manager, PhysicalPosition};

const TRAY_ID: &str = "roxy";

/// The icon for each state, decoded at compile time (`icons/gen_tray_icons.py` draws them).
pub fn icon(state: LoopState) -> Image<'static> {
    match state {
        LoopState::Idle => tauri::include_image!("icons/tray/idle.png"),
        LoopState::Listening => tauri::include_image!("icons/tray/listening.png"),
        LoopState::Thinking => tauri::include_image!("icons/tray/thinking.png"),
        LoopState::Speaking => tauri::include_image!("icons/tray/speaking.png"),
        LoopState::Muted => tauri::include_image!("icons/tray/muted.png"),
        LoopState::Error => tauri::include_image!("icons/tray/error.png"),
    }
}

/// Idle and muted are template images on macOS: the menu bar draws them in its own ink, so they
/// stay visible in light and dark mode. The active states keep their colour.
fn is_template(state: LoopState) -> bool {
    matches!(state, LoopState::Idle | LoopState::Muted)
}

fn tooltip(state: LoopState) -> &'static str {
    match state {
        LoopState::Idle => "Roxy — ready",
        LoopState::Listening => "Roxy — listening",
        LoopState::Thinking => "Roxy — thinking",
        LoopState::Speaking => "Roxy — speaking",
        LoopState::Muted => "Roxy — wake word muted",
        LoopState::Error => "Roxy — needs attention",
    }
}

/// Shows `event` on the tray icon and sends it to the panel. The coordinator calls this.
pub fn set_state(app: &AppHandle, event: StateEvent) {
    if let Some(tray) = app.tray_by_id(TRAY_ID) {
        let _ = tray.set_icon_with_as_template(Some(icon(event.state)), is_template(event.state));
        let _ = tray.set_tooltip(Some(tooltip(event.state)));
    }
    tracing::info!(state = ?event.state, "tray state");
    *app.state::<Shell>().loop_state.lock().unwrap_or_else(|e| e.into_inner()) = event.clone();
    let _ = app.emit(engine::STATE_EVENT, event);
}

pub fn show(app: &AppHandle, label: &str) {
    if let Some(window) = app.get_webview_window(label) {
        let _ = window.show();
        let _ = window.set_focus();
    }
}

/// Opens the panel just under the tray icon. The icon's rect is known only after a tray event
/// (asking before one panics on some platforms), so without one the panel opens where it is.
pub fn show_panel(app: &AppHandle) {
    let Some(panel) = app.get_webview_window("panel") else { return };
    let rect = *app.state::<Shell>().tray_rect.lock().unwrap_or_else(|e| e.into_inner());
    if let (Some(rect), Ok(size), Ok(scale)) = (rect, panel.outer_size(), panel.scale_factor()) {
        let pos = rect.position.to_physical::<f64>(scale);
        let icon = rect.size.to_physical::<f64>(scale);
        let x = (pos.x + icon.width / 2.0 - size.width as f64 / 2.0).max(0.0);
        let _ = panel.set_position(PhysicalPosition::new(x, pos.y + icon.height));
    }
    let _ = panel.show();
    let _ = panel.set_focus();
}

pub fn build(app: &tauri::App) -> tauri::Result<()> {
    let listen = MenuItem::with_id(app, "listen", "Listen Now", true, None::<&str>)?;
    let mute = CheckMenuItem::with_id(app, "mute", "Mute Wake Word", true, false, None::<&str>)?;
    let stop = MenuItem::with_id(app, "stop", "Stop Speaking", true, None::<&str>)?;
    let open = MenuItem::with_id(app, "open", "Open Roxy", true, None::<&str>)?;
    let settings = MenuItem::with_id(app, "settings", "Settings…", true, Some("CmdOrCtrl+,"))?;
    let quit = MenuItem::with_id(app, "quit", "Quit Roxy", true, Some("CmdOrCtrl+Q"))?;
    let sep = || PredefinedMenuItem::separator(app);
    let menu = Menu::with_items(app, &[&listen, &mute, &stop, &sep()?, &open, &settings, &sep()?, &quit])?;
    let mute_item = mute.clone();
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon(LoopState::Idle))
        .icon_as_template(is_template(LoopState::Idle))
        .tooltip(tooltip(LoopState::Idle))
        .menu(&menu)
        // Left click opens the panel (macOS, Windows); the menu stays on right click. Linux
        // trays (AppIndicator) always show the menu, where "Open Roxy" opens the panel.
        .show_menu_on_left_click(false)
        .on_menu_event(move |app, event| match event.id.as_ref() {
            "listen" => engine::dispatch(app, Action::ListenNow),
            "mute" => {
                let muted = mute_item.is_checked().unwrap_or(false);
                engine::dispatch(app, Action::MuteWakeWord { muted });
                // Muted shows while the loop is idle; listening, thinking and speaking show as such.
                let mut event = app.state::<Shell>().loop_state.lock().unwrap_or_else(|e| e.into_inner()).clone();
                match (muted, event.state) {
                    (true, LoopState::Idle) => event.state = LoopState::Muted,
                    (false, LoopState::Muted) => event.state = LoopState::Idle,
                    _ => {}
                }
                set_state(app, event);
            }
            "stop" => engine::dispatch(app, Action::StopSpeaking),
            "open" => show_panel(app),
            "settings" => show(app, "main"),
            "quit" => engine::quit(app),
            _ => {}
        })
        .on_tray_icon_event(|tray, event| {
            let app = tray.app_handle();
            if let TrayIconEvent::Click { rect, .. } | TrayIconEvent::Enter { rect, .. } | TrayIconEvent::Move { rect, .. } = &event {
                *app.state::<Shell>().tray_rect.lock().unwrap_or_else(|e| e.into_inner()) = Some(*rect);
            }
            if let TrayIconEvent::Click { button: MouseButton::Left, button_state: MouseButtonState::Up, .. } = event {
                show_panel(app);
            }
        })
        .build(app)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WCAG relative luminance of an sRGB colour.
    fn luminance([r, g, b]: [f64; 3]) -> f64 {
        let lin = |c: f64| {
            let c = c / 255.0;
            if c <= 0.04045 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
        };
        0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)
    }

    fn contrast(a: [f64; 3], b: [f64; 3]) -> f64 {
        let (la, lb) = (luminance(a), luminance(b));
        (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
    }

    /// The alpha-weighted mean colour of a glyph, and how many pixels it covers.
    fn glyph(image: &Image<'_>) -> ([f64; 3], f64) {
        let (mut sum, mut weight) = ([0.0; 3], 0.0);
        for px in image.rgba().chunks_exact(4) {
            let a = px[3] as f64 / 255.0;
            for c in 0..3 {
                sum[c] += px[c] as f64 * a;
            }
            weight += a;
        }
        (sum.map(|c| c / weight.max(1e-9)), weight)
    }

    #[test]
    fn every_tray_icon_reads_on_a_light_and_a_dark_menu_bar() {
        // macOS's light and dark menu bars, and a dark Linux panel.
        let bars = [[236.0, 236.0, 236.0], [30.0, 30.0, 30.0], [40.0, 40.0, 46.0]];
        for state in [LoopState::Idle, LoopState::Listening, LoopState::Thinking, LoopState::Speaking, LoopState::Muted, LoopState::Error] {
            let image = icon(state);
            let (colour, covered) = glyph(&image);
            assert!(covered > 200.0, "{state:?}: the glyph covers only {covered:.0} pixels");
            for bar in bars {
                let ratio = contrast(colour, bar);
                assert!(ratio >= 3.0, "{state:?}: colour {colour:?} has contrast {ratio:.2} on {bar:?}");
            }
            if is_template(state) {
                // The menu bar re-inks a template from its alpha: the colour must be neutral.
                let spread = colour.iter().cloned().fold(f64::MIN, f64::max) - colour.iter().cloned().fold(f64::MAX, f64::min);
                assert!(spread < 8.0, "{state:?} is a template but coloured {colour:?}");
            }
        }
        assert!(is_template(LoopState::Idle), "the icon seen all day must follow light and dark mode");
    }
}
