/** GET a JSON resource of the service (with the stored token, when there is one); undefined on failure. */
export async function getJson<T>(path: string): Promise<T | undefined> {
  const token = localStorage.getItem('kpi-live-token');
  try {
    const res = await fetch(path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    return res.ok ? ((await res.json()) as T) : undefined;
  } catch {
    return undefined;
  }
}
