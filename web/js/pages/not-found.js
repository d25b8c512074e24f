// The 404 page only needs the shared header.
import { initHeader } from '../session.js';

initHeader();
