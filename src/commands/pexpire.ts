import { expireCommand } from './expire-common.js';

export default expireCommand('pexpire', 1, '2.6.0');
