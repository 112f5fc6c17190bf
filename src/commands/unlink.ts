import { deleteCommand } from './keys-variadic.js';

export default deleteCommand('unlink', 'Deletes keys like DEL. Replies with the number deleted.', '4.0.0');
