// Live updates by polling with no storm: one tick at a time, a short interval while the tab is seen, a long
// one while it is hidden, and a growing wait after failures. A tick runs at once when the tab comes back.

export class Poller {
  constructor(tick, { visibleMs = 1500, hiddenMs = 30000, maxBackoffMs = 30000, onState = () => {} } = {}) {
    this.tick = tick;
    this.visibleMs = visibleMs;
    this.hiddenMs = hiddenMs;
    this.maxBackoffMs = maxBackoffMs;
    this.onState = onState;
    this.failures = 0;
    this.timer = null;
    this.running = false;
    this.stopped = true;
    this.onVisibility = () => {
      if (!document.hidden) this.now();
    };
  }

  start() {
    this.stopped = false;
    document.addEventListener("visibilitychange", this.onVisibility);
    this.now();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    document.removeEventListener("visibilitychange", this.onVisibility);
  }

  /** Run a tick as soon as the one in flight (if any) is done. */
  now() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    if (this.running) {
      this.again = true;
      return;
    }
    this.run();
  }

  delay() {
    if (this.failures > 0) return Math.min(this.maxBackoffMs, 2000 * 2 ** (this.failures - 1));
    return document.hidden ? this.hiddenMs : this.visibleMs;
  }

  async run() {
    this.running = true;
    this.again = false;
    try {
      await this.tick();
      this.failures = 0;
      this.onState({ ok: true });
    } catch (error) {
      this.failures += 1;
      this.onState({ ok: false, error, retryInMs: this.delay() });
    } finally {
      this.running = false;
    }
    if (this.stopped) return;
    if (this.again) {
      this.run();
      return;
    }
    this.timer = setTimeout(() => this.run(), this.delay());
  }
}
