// @vitest-environment happy-dom
import { LitElement, html } from 'lit';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { KeyedFetchController, RETRY_MS } from '../../web/src/keyed-fetch.js';
import { setVisibility } from './fakes.js';

/** A host whose key the test sets, and a fetch the test answers. */
class FetchHost extends LitElement {
  static override properties = { what: { state: true } };
  declare what: string | undefined;
  fetches: { key: string; signal: AbortSignal; resolve: (v: string | undefined) => void; reject: (e: Error) => void }[] = [];
  readonly data = new KeyedFetchController<string>(this, {
    key: () => this.what,
    fetch: (key, signal) => new Promise((resolve, reject) => this.fetches.push({ key, signal, resolve, reject })),
    refreshMs: 15_000,
  });
  constructor() {
    super();
    this.what = 'a';
  }
  override render() {
    return html`${this.data.value ?? ''}`;
  }
}
customElements.define('fetch-host', FetchHost);

/** The same, fetched once per key (no polling). */
class OnceHost extends LitElement {
  fetches: { resolve: (v: string | undefined) => void; reject: (e: Error) => void }[] = [];
  readonly data = new KeyedFetchController<string>(this, {
    key: () => 'x',
    fetch: () => new Promise((resolve, reject) => this.fetches.push({ resolve, reject })),
  });
  override render() {
    return html`${this.data.value ?? ''}`;
  }
}
customElements.define('once-host', OnceHost);

async function mount(): Promise<FetchHost> {
  const host = document.createElement('fetch-host') as FetchHost;
  document.body.append(host);
  await host.updateComplete;
  return host;
}

afterEach(() => {
  vi.useRealTimers();
  setVisibility('visible');
  document.body.replaceChildren();
});

describe('KeyedFetchController', () => {
  it('fetches when the key changes, aborts the fetch it replaces, and ignores its late answer', async () => {
    const host = await mount();
    expect(host.fetches.map((f) => f.key)).toEqual(['a']);
    // more updates with the same key fetch nothing more
    host.requestUpdate();
    await host.updateComplete;
    expect(host.fetches).toHaveLength(1);
    host.what = 'b';
    await host.updateComplete;
    expect(host.fetches.map((f) => f.key)).toEqual(['a', 'b']);
    expect(host.fetches[0]!.signal.aborted).toBe(true);
    host.fetches[1]!.resolve('B');
    host.fetches[0]!.resolve('A');
    await vi.waitFor(() => expect(host.data.value).toBe('B'));
    expect(host.data.valueKey).toBe('b');
    await host.updateComplete;
    expect(host.shadowRoot!.textContent).toContain('B');
    host.what = undefined;
    await host.updateComplete;
    expect(host.data.value).toBeUndefined();
  });

  it('keeps its value when a refetch fails', async () => {
    vi.useFakeTimers();
    const host = await mount();
    host.fetches[0]!.resolve('A');
    await vi.advanceTimersByTimeAsync(0);
    await vi.advanceTimersByTimeAsync(15_000);
    expect(host.fetches).toHaveLength(2);
    host.fetches[1]!.reject(new Error('503'));
    await vi.advanceTimersByTimeAsync(0);
    expect(host.data.value).toBe('A');
    // says why until a fetch succeeds
    expect(host.data.error).toBe('503');
    await vi.advanceTimersByTimeAsync(15_000);
    host.fetches[2]!.resolve('A2');
    await vi.advanceTimersByTimeAsync(0);
    expect(host.data.value).toBe('A2');
    expect(host.data.error).toBeUndefined();
  });

  it('tries a failed fetch that is not polled again after a while, until it succeeds', async () => {
    vi.useFakeTimers();
    const host = document.createElement('once-host') as OnceHost;
    document.body.append(host);
    await host.updateComplete;
    host.fetches[0]!.reject(new Error('the store is unavailable'));
    await vi.advanceTimersByTimeAsync(0);
    expect(host.data.error).toBe('the store is unavailable');
    expect(host.fetches).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(RETRY_MS);
    expect(host.fetches).toHaveLength(2);
    host.fetches[1]!.resolve('B');
    await vi.advanceTimersByTimeAsync(0);
    expect(host.data.value).toBe('B');
    expect(host.data.error).toBeUndefined();
    await vi.advanceTimersByTimeAsync(10 * RETRY_MS);
    expect(host.fetches).toHaveLength(2);
  });

  it('polls while the page is visible, pauses while hidden, refreshes on coming back, and stops for good when the host leaves', async () => {
    vi.useFakeTimers();
    const host = await mount();
    host.fetches[0]!.resolve('A');
    await vi.advanceTimersByTimeAsync(30_000);
    expect(host.fetches).toHaveLength(3);
    setVisibility('hidden');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(host.fetches).toHaveLength(3);
    setVisibility('visible');
    expect(host.fetches).toHaveLength(4);
    await vi.advanceTimersByTimeAsync(15_000);
    expect(host.fetches).toHaveLength(5);
    const inFlight = host.fetches[4]!;
    host.remove();
    expect(inFlight.signal.aborted).toBe(true);
    await vi.advanceTimersByTimeAsync(60_000);
    setVisibility('visible');
    expect(host.fetches).toHaveLength(5);
    // back on the page: fetched afresh
    document.body.append(host);
    await host.updateComplete;
    expect(host.fetches).toHaveLength(6);
  });
});
