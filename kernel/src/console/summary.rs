//! The end of a run on screen, for a PC without a serial port: the verdict in
//! big letters, the counts, what it ran on, every result (failed first), and a
//! QR code carrying all of it (testkit's `summary` format) for a phone. The
//! QR text is handed back to the caller, who sends it on the wire (`qr`
//! events), so the host can check it against the event stream.
//!
//! Called once, after the suite; the text console stops there so that later
//! lines do not scroll the summary away (COM1 still gets them).

use core::fmt::Write;

use qrcodegen_no_heap::QrCode;
use testkit::protocol::Outcome;
use testkit::summary::{self, Header};

use super::framebuffer::{self, BACKGROUND, FOREGROUND};
use super::results::{self, Run};
use super::{font, qr};
use crate::arch::cpuinfo;
use crate::arch::framebuffer::{Rgb, Surface};
use crate::kprintln;

const GREEN: Rgb = 0x4c_cb_5a;
const RED: Rgb = 0xf0_50_4a;
const YELLOW: Rgb = 0xd8_b4_40;
const DIM: Rgb = 0x88_90_a0;
/// Smallest QR module, in pixels, a phone reads off a screen.
const MODULE_MIN_PX: usize = 3;

type Line = heapless::String<160>;

/// The QR code's text, as drawn.
pub type Text = heapless::Vec<u8, { qr::TEXT_MAX }>;

/// Draws the summary (when there is a screen) and returns the QR code's
/// text: the one on screen, else the longest that a QR code holds. `None`
/// without a `hello` or when not even the summary's header fits.
pub fn show() -> Option<Text> {
    let model = cpuinfo::model();
    let ucode = cpuinfo::microcode();
    let run = results::run();
    let header = run.header(&model, ucode)?;
    if run.lost > 0 {
        kprintln!("summary: {} results did not fit its table", run.lost);
    }
    let entries = &run.results[..];
    let run = &*run;
    let mut text = [0u8; qr::TEXT_MAX];
    let drawn = framebuffer::take_over(|surface| {
        let layout = Layout::new(surface.width, surface.height);
        let max = qr::max_version(layout.qr_budget, MODULE_MIN_PX);
        let len = qr::fit(&header, entries, &mut text, max.unwrap_or(qr::MAX_VERSION));
        let mut code = qr::Code::new();
        let qr = match (len, max) {
            (Some(len), Some(max)) => code.encode(&text[..len], max),
            _ => None,
        };
        draw(surface, &layout, &header, run, qr.as_ref());
        len
    });
    let len = drawn.unwrap_or_else(|| qr::fit(&header, entries, &mut text, qr::MAX_VERSION));
    if len.is_none() {
        kprintln!("summary: no QR code (not even its header fits)");
    }
    Text::from_slice(&text[..len?]).ok()
}

/// Where things go: text on the left, the QR code on the right.
struct Layout {
    width: usize,
    height: usize,
    margin: usize,
    /// Largest side the QR code may take, in pixels.
    qr_budget: usize,
}

impl Layout {
    fn new(width: usize, height: usize) -> Layout {
        let margin = (height / 40).max(8);
        Layout {
            width,
            height,
            margin,
            qr_budget: height.saturating_sub(2 * margin).min(width * 2 / 5),
        }
    }
}

fn draw(s: &mut Surface, l: &Layout, h: &Header<&str>, run: &Run, code: Option<&QrCode<'_>>) {
    s.fill(0, 0, l.width, l.height, BACKGROUND);
    let mut text_end = l.width - l.margin;
    if let Some(code) = code {
        let module_px = (l.qr_budget / qr::side(code, 1)).max(1);
        let side = qr::side(code, module_px);
        let (x, y) = (l.width - l.margin - side, l.margin);
        qr::draw(s, code, (x, y), module_px);
        let mut note = Line::new();
        let _ = write!(
            note,
            "QR: version {}, ECC {}",
            code.version().value(),
            qr::ecc_name(code)
        );
        font::draw_str(
            s,
            (x, y + side + l.margin / 2),
            l.width,
            &note,
            1,
            DIM,
            BACKGROUND,
        );
        text_end = x.saturating_sub(l.margin);
    }
    let text_width = text_end.saturating_sub(l.margin);
    let fits = |chars: usize| (text_width / (font::WIDTH * chars)).clamp(1, 6);
    let mut pen = Pen {
        s,
        x0: l.margin,
        x1: text_end,
        y: l.margin,
        y_max: l.height - l.margin,
    };
    let detail = fits(40).min(3);
    let (verdict, color) = match (h.failed, h.passed + h.skipped) {
        (0, 0) => ("NO TESTS", YELLOW),
        (0, _) => ("PASSED", GREEN),
        _ => ("FAILED", RED),
    };
    pen.line(concat!("istorm ", env!("CARGO_PKG_VERSION")), detail, DIM);
    pen.line(verdict, fits(8), color);
    let mut line = Line::new();
    let _ = write!(
        line,
        "{} passed, {} failed, {} skipped",
        h.passed, h.failed, h.skipped
    );
    pen.line(&line, detail, FOREGROUND);
    pen.y += detail * font::HEIGHT / 2;
    pen.fmt(
        detail,
        format_args!("strategy {}, seed {}", h.setting.strategy, h.setting.seed),
    );
    pen.fmt(detail, format_args!("cpu {}", h.cpu));
    match h.ucode {
        Some(rev) => pen.fmt(detail, format_args!("microcode {rev:#x}")),
        None => pen.fmt(detail, format_args!("microcode: n/a")),
    }
    pen.fmt(
        detail,
        format_args!(
            "{} cpus, {} boot, {}, vm: {}",
            h.setting.cpus,
            summary::door_name(h.setting.door),
            summary::lapic_name(h.setting.lapic),
            summary::machine_name(h.setting.machine)
        ),
    );
    pen.y += detail * font::HEIGHT / 2;
    results_list(&mut pen, run, detail);
}

/// Every result, failed first with its reason, as big as they fit; `... N
/// more` where they do not.
fn results_list(pen: &mut Pen<'_>, run: &Run, max_scale: usize) {
    let entries = &run.results[..];
    let lines = entries.len() + 2 * run.reasons.len();
    let scale = (1..=max_scale.min(2))
        .rev()
        .find(|&s| pen.rows_left(s) > lines)
        .unwrap_or(1);
    let failed = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.outcome == Outcome::Fail);
    let others = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.outcome != Outcome::Fail);
    for (shown, (index, e)) in failed.chain(others).enumerate() {
        if shown + 1 < entries.len() && pen.rows_left(scale) < 2 {
            pen.fmt(scale, format_args!("... {} more", entries.len() - shown));
            return;
        }
        let (word, color) = match e.outcome {
            Outcome::Pass => ("ok     ", GREEN),
            Outcome::Fail => ("FAILED ", RED),
            Outcome::Skip => ("skip   ", YELLOW),
            Outcome::NotReproduced => ("not-rep", YELLOW),
        };
        let mut line = Line::new();
        let _ = write!(line, "{word}{} [{}]", e.test, e.strategy);
        pen.line(&line, scale, color);
        if let Some(reason) = run.reason(index) {
            let x0 = pen.x0;
            pen.x0 += word.len() * font::WIDTH * scale;
            pen.line(reason, scale, DIM);
            pen.x0 = x0;
        }
    }
}

/// Writes lines down the text column, wrapping long ones, until it is full.
struct Pen<'s> {
    s: &'s mut Surface,
    x0: usize,
    x1: usize,
    y: usize,
    y_max: usize,
}

impl Pen<'_> {
    fn line_height(scale: usize) -> usize {
        (font::HEIGHT + 2) * scale
    }

    fn rows_left(&self, scale: usize) -> usize {
        self.y_max.saturating_sub(self.y) / Self::line_height(scale)
    }

    fn line(&mut self, text: &str, scale: usize, color: Rgb) {
        let per_line = ((self.x1.saturating_sub(self.x0)) / (font::WIDTH * scale)).max(1);
        let mut rest = text;
        while !rest.is_empty() && self.y + font::HEIGHT * scale <= self.y_max {
            let cut = rest
                .char_indices()
                .nth(per_line)
                .map_or(rest.len(), |(i, _)| i);
            let (now, later) = rest.split_at(cut);
            font::draw_str(
                self.s,
                (self.x0, self.y),
                self.x1,
                now,
                scale,
                color,
                BACKGROUND,
            );
            self.y += Self::line_height(scale);
            rest = later;
        }
    }

    fn fmt(&mut self, scale: usize, args: core::fmt::Arguments<'_>) {
        let mut line = Line::new();
        let _ = line.write_fmt(args);
        self.line(&line, scale, FOREGROUND);
    }
}
