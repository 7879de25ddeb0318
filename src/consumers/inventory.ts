/** Consumer group `inventory` (`npm run consumer:inventory`): stock reserved per SKU. */
import { consumerGroups } from './runtime/groups.ts';
import { runConsumer } from './runtime/run-consumer.ts';

runConsumer(consumerGroups.inventory);
