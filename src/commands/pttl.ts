import { ttlCommand } from './expire-common.js';

export default ttlCommand('pttl', '2.6.0');
