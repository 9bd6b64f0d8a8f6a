//! Screen layout, shared by [`crate::view`] (drawing) and [`crate::update`] (page sizes,
//! mouse hit-testing), so both agree on where everything is.

use crate::model::Focus;
use ratatui::layout::Rect;

/// The screen's regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    /// Top bar (one line).
    pub top: Rect,
    /// Request list, with its border and column header.
    pub list: Rect,
    /// Detail pane, with its border and tab bar.
    pub detail: Rect,
    /// Status line (one line).
    pub status: Rect,
}

impl Areas {
    /// Rows of exchanges the list shows.
    pub fn list_rows(&self) -> u16 {
        self.list.height.saturating_sub(3)
    }

    /// Screen row of the first exchange in the list.
    pub fn list_first_row(&self) -> u16 {
        self.list.y + 2
    }

    /// Lines of content the detail pane shows.
    pub fn detail_rows(&self) -> u16 {
        self.detail.height.saturating_sub(3)
    }
}

/// Regions for a terminal of `size` (columns, rows) with `focus` and a top bar of `top`
/// lines (1, or 2 when the public URL and the counts do not fit on one line; see
/// [`crate::topbar::height`]).
pub fn areas(size: (u16, u16), focus: Focus, top: u16) -> Areas {
    let (w, h) = size;
    let top = top.clamp(1, 2).min(h.saturating_sub(1)).max(h.min(1));
    let mid = h.saturating_sub(1 + top);
    let list_h = match focus {
        Focus::List => (mid * 45 / 100).max(6),
        Focus::Detail => (mid / 4).clamp(5, 8),
    }
    .min(mid);
    let detail_h = mid - list_h;
    Areas {
        top: Rect::new(0, 0, w, top.min(h)),
        list: Rect::new(0, top.min(h), w, list_h),
        detail: Rect::new(0, (top + list_h).min(h), w, detail_h),
        status: Rect::new(0, h.saturating_sub(1), w, h.min(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_tile_the_screen() {
        for focus in [Focus::List, Focus::Detail] {
            for top in [1, 2] {
                for h in 0..60u16 {
                    let a = areas((100, h), focus, top);
                    if h >= 3 {
                        assert_eq!(a.list.height + a.detail.height + 1 + top, h, "{h}");
                        assert_eq!(a.top.height, top);
                    }
                    assert!(a.list.bottom() <= h.max(1) && a.detail.bottom() <= h.max(1));
                }
            }
        }
        let a = areas((160, 45), Focus::List, 1);
        assert_eq!(a.list_rows(), 16);
    }
}
