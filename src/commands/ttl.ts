import { ttlCommand } from './expire-common.js';

export default ttlCommand('ttl', '1.0.0');
