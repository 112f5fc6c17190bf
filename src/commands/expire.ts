import { expireCommand } from './expire-common.js';

export default expireCommand('expire', 1000, '1.0.0');
