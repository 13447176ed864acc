// The public view's entry (web/public.html, served at /public when KPI_PUBLIC_VIEW is on).
import './kpi-public.js';
