//! The browser harness itself: Chromium loads the demo page from the real server.

use crate::common;

use common::browser::{Browser, chromium_path};
use common::{Backend, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_page_loads_in_chromium() {
    let Some(chromium) = chromium_path() else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await;
    let browser = Browser::launch(&chromium).await;
    let page = browser.page(1280, 900).await;
    page.goto(&app.url("/")).await;
    let title = page.eval("document.title").await;
    assert!(title.as_str().is_some_and(|t| !t.is_empty()), "{title}");
}
