// The dashboard's entry.
import './kpi-dashboard.js';
