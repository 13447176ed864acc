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
