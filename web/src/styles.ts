import { css } from 'lit';

/** The card look shared by tiles, funnels and comparisons. */
export const cardStyles = css`
  :host {
    display: block;
    background: var(--card);
    border: 1px solid var(--line);
    border-radius: 8px;
    padding: 12px 14px;
  }
  h3 {
    margin: 0 0 8px;
    font-size: 1rem;
  }
`;

/**
 * What every shadow root with controls needs: a focus ring that shows where
 * the keyboard is (never removed), text only assistive technology reads, and
 * the look of buttons and inputs.
 */
export const controlStyles = css`
  :focus-visible {
    outline: 3px solid var(--focus);
    outline-offset: 2px;
  }
  .visually-hidden {
    position: absolute;
    width: 1px;
    height: 1px;
    padding: 0;
    margin: -1px;
    overflow: hidden;
    clip: rect(0 0 0 0);
    white-space: nowrap;
    border: 0;
  }
  button,
  input,
  select {
    font: inherit;
    background: var(--card);
    color: var(--fg);
    border: 1px solid var(--line);
    border-radius: 4px;
    padding: 4px 10px;
  }
  button {
    cursor: pointer;
  }
  button:hover {
    border-color: var(--muted);
  }
  button[aria-pressed='true'] {
    background: var(--s0);
    border-color: var(--s0);
    color: #fff;
  }
  .badge {
    display: inline-block;
    background: var(--bad);
    color: #fff;
    border-radius: 10px;
    padding: 1px 8px;
    font-size: 0.8rem;
    font-weight: 600;
  }
`;

/** Tables of numbers: full width, figures right-aligned in tabular digits, the first column (the row's name) left. */
export const tableStyles = css`
  table {
    width: 100%;
    border-collapse: collapse;
    font-size: 0.85rem;
    font-variant-numeric: tabular-nums;
  }
  th,
  td {
    text-align: right;
    padding: 3px 6px;
    border-bottom: 1px solid var(--line);
  }
  th:first-child,
  td:first-child {
    text-align: left;
  }
`;
