/** The read token this browser keeps, when the service needs one. */
export function storedToken(): string | undefined {
  return localStorage.getItem('kpi-live-token') ?? undefined;
}

/** GET a JSON resource of the service (with the stored token, when there is one); undefined on failure. */
export async function getJson<T>(path: string): Promise<T | undefined> {
  const token = storedToken();
  try {
    const res = await fetch(path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    return res.ok ? ((await res.json()) as T) : undefined;
  } catch {
    return undefined;
  }
}
