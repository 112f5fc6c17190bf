import { deleteCommand } from './keys-variadic.js';

export default deleteCommand('del', 'Deletes keys, releasing their PERSISTENT locks whatever the owner. Replies with the number deleted.', '1.0.0');
