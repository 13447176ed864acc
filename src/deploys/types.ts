/** A deploy marker as the API and the live stream send it (shared with the dashboard). */
export interface Deploy {
  id: string;
  version: string;
  /** When it went out, ms. */
  at: number;
  note?: string;
  /** Shown in the public view (with its note) when the public view is on; false unless the poster says so. */
  public?: boolean;
}
