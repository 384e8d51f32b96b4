//! The storage traits on PostgreSQL: each operation in the module of its
//! family (`tenants`, `events`, `portal`, `telnxo`), here only dispatched.

use rackwave_core::event::Event;

use super::txn::PgTxn;
use super::{coordination, events, message_log, portal, telnxo, tenants};
use crate::sso::{AuditEntry, PlatformSession, SsoToken};
use crate::telnxo::{Call, Channel, ParkedReport, TelnxoMessage, TelnxoNumber};
use crate::*;

impl Reads for PgTxn {
    async fn workspace(&self, id: &str) -> Result<Option<Workspace>> {
        tenants::workspace(self, id).await
    }
    async fn workspaces(&self) -> Result<Vec<Workspace>> {
        tenants::workspaces(self).await
    }
    async fn suspended_workspaces(&self) -> Result<Vec<String>> {
        tenants::suspended_workspaces(self).await
    }
    async fn smtp_account(&self, username: &str) -> Result<Option<SmtpAccount>> {
        tenants::smtp_account(self, username).await
    }
    async fn smtp_accounts_of(&self, workspace_id: &str) -> Result<Vec<SmtpAccount>> {
        tenants::smtp_accounts_of(self, workspace_id).await
    }
    async fn api_key(&self, digest: &str) -> Result<Option<ApiKey>> {
        tenants::api_key(self, digest).await
    }
    async fn api_keys_of(&self, workspace_id: &str) -> Result<Vec<ApiKey>> {
        tenants::api_keys_of(self, workspace_id).await
    }
    async fn sender_domain(&self, domain: &str) -> Result<Option<SenderDomain>> {
        tenants::sender_domain(self, domain).await
    }
    async fn sender_domains_of(&self, workspace_id: &str) -> Result<Vec<SenderDomain>> {
        tenants::sender_domains_of(self, workspace_id).await
    }
    async fn event(&self, workspace_id: &str, seq: u64) -> Result<Option<StoredEvent>> {
        events::event(self, workspace_id, seq).await
    }
    async fn event_by_id(&self, id: &str) -> Result<Option<StoredEvent>> {
        events::event_by_id(self, id).await
    }
    async fn events(
        &self,
        workspace_id: &str,
        query: &EventQuery,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<StoredEvent>> {
        events::events(self, workspace_id, query, cursor, limit).await
    }
    async fn cursor(&self, name: &str) -> Result<u64> {
        events::cursor(self, name).await
    }
    async fn cursors(&self) -> Result<Vec<(String, u64)>> {
        events::cursors(self).await
    }
    async fn endpoint(&self, id: &str) -> Result<Option<Endpoint>> {
        events::endpoint(self, id).await
    }
    async fn endpoints_of(&self, workspace_id: &str) -> Result<Vec<Endpoint>> {
        events::endpoints_of(self, workspace_id).await
    }
    async fn delivery(&self, id: &str) -> Result<Option<Delivery>> {
        events::delivery(self, id).await
    }
    async fn deliveries_of(
        &self,
        endpoint_id: &str,
        state: Option<DeliveryState>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Delivery>> {
        events::deliveries_of(self, endpoint_id, state, cursor, limit).await
    }
    async fn due_endpoints(
        &self,
        after: Option<&str>,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<String>> {
        events::due_endpoints(self, after, now_ms, limit).await
    }
    async fn due_deliveries(
        &self,
        endpoint_id: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<String>> {
        events::due_deliveries(self, endpoint_id, now_ms, limit).await
    }
    async fn idempotency(
        &self,
        workspace_id: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>> {
        tenants::idempotency(self, workspace_id, key).await
    }
    async fn event_counts(
        &self,
        workspace_id: &str,
        since_day: i64,
        until_day: i64,
        tag: Option<&str>,
    ) -> Result<Vec<(i64, String, u64)>> {
        events::event_counts(self, workspace_id, since_day, until_day, tag).await
    }
    async fn suppression(&self, workspace_id: &str, address: &str) -> Result<Option<Suppression>> {
        tenants::suppression(self, workspace_id, address).await
    }
    async fn suppressions(
        &self,
        workspace_id: &str,
        reason: Option<SuppressionReason>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Suppression>> {
        tenants::suppressions(self, workspace_id, reason, after, limit).await
    }
    async fn client(&self, id: &str) -> Result<Option<Client>> {
        portal::client(self, id).await
    }
    async fn client_by_email(&self, email: &str) -> Result<Option<Client>> {
        portal::client_by_email(self, email).await
    }
    async fn client_session(&self, digest: &str) -> Result<Option<ClientSession>> {
        portal::client_session(self, digest).await
    }
    async fn subscription(&self, id: &str) -> Result<Option<Subscription>> {
        portal::subscription(self, id).await
    }
    async fn subscriptions_of(&self, client_id: &str) -> Result<Vec<Subscription>> {
        portal::subscriptions_of(self, client_id).await
    }
    async fn subscriptions_ending(
        &self,
        until_ms: i64,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> Result<Vec<(i64, String)>> {
        portal::subscriptions_ending(self, until_ms, after, limit).await
    }
    async fn clients(&self, after: Option<&str>, limit: usize) -> Result<Page<Client>> {
        portal::clients(self, after, limit).await
    }
    async fn subscriptions(&self, after: Option<&str>, limit: usize) -> Result<Page<Subscription>> {
        portal::subscriptions(self, after, limit).await
    }
    async fn invoice(&self, id: &str) -> Result<Option<Invoice>> {
        portal::invoice(self, id).await
    }
    async fn invoices_of(&self, client_id: &str) -> Result<Vec<Invoice>> {
        portal::invoices_of(self, client_id).await
    }
    async fn invoices(&self, after: Option<&str>, limit: usize) -> Result<Page<Invoice>> {
        portal::invoices(self, after, limit).await
    }
    async fn invoices_due(
        &self,
        until_ms: i64,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> Result<Vec<(i64, String)>> {
        portal::invoices_due(self, until_ms, after, limit).await
    }
    async fn payment_by_reference(&self, reference: &str) -> Result<Option<Payment>> {
        portal::payment_by_reference(self, reference).await
    }
    async fn payments_of(&self, invoice_id: &str) -> Result<Vec<Payment>> {
        portal::payments_of(self, invoice_id).await
    }
    async fn credit_notes_of(&self, invoice_id: &str) -> Result<Vec<CreditNote>> {
        portal::credit_notes_of(self, invoice_id).await
    }
    async fn password_reset(&self, digest: &str) -> Result<Option<PasswordReset>> {
        portal::password_reset(self, digest).await
    }
    async fn notices(&self, limit: usize) -> Result<Vec<(u64, Notice)>> {
        portal::notices(self, limit).await
    }
    async fn telnxo_number(&self, number: &str) -> Result<Option<TelnxoNumber>> {
        telnxo::telnxo_number(self, number).await
    }
    async fn telnxo_numbers_of(&self, workspace_id: &str) -> Result<Vec<TelnxoNumber>> {
        telnxo::telnxo_numbers_of(self, workspace_id).await
    }
    async fn telnxo_message(&self, id: &str) -> Result<Option<TelnxoMessage>> {
        telnxo::telnxo_message(self, id).await
    }
    async fn telnxo_messages_of(
        &self,
        workspace_id: &str,
        channel: Option<Channel>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<TelnxoMessage>> {
        telnxo::telnxo_messages_of(self, workspace_id, channel, cursor, limit).await
    }
    async fn call(&self, id: &str) -> Result<Option<Call>> {
        telnxo::call(self, id).await
    }
    async fn calls_of(
        &self,
        workspace_id: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Call>> {
        telnxo::calls_of(self, workspace_id, cursor, limit).await
    }
    async fn telnxo_by_carrier_id(
        &self,
        channel: Channel,
        carrier_id: &str,
    ) -> Result<Option<(String, u32)>> {
        telnxo::telnxo_by_carrier_id(self, channel, carrier_id).await
    }
    async fn carrier_ids(
        &self,
        after: Option<(Channel, String)>,
        limit: usize,
    ) -> Result<Vec<(Channel, String, String, u32)>> {
        telnxo::carrier_ids(self, after, limit).await
    }
    async fn telnxo_due(&self, channel: Channel, now_ms: i64, limit: usize) -> Result<Vec<String>> {
        telnxo::telnxo_due(self, channel, now_ms, limit).await
    }
    async fn whatsapp_window(&self, workspace_id: &str, customer: &str) -> Result<Option<i64>> {
        telnxo::whatsapp_window(self, workspace_id, customer).await
    }
    async fn whatsapp_windows_of(&self, workspace_id: &str) -> Result<Vec<(String, i64)>> {
        telnxo::whatsapp_windows_of(self, workspace_id).await
    }
    async fn telnxo_usage(&self, workspace_id: &str, counter: &str) -> Result<u64> {
        telnxo::telnxo_usage(self, workspace_id, counter).await
    }
    async fn telnxo_usage_of(&self, workspace_id: &str) -> Result<Vec<(String, u64)>> {
        telnxo::telnxo_usage_of(self, workspace_id).await
    }
    async fn inbound_parts(&self, key: &str) -> Result<Vec<(u8, String)>> {
        telnxo::inbound_parts(self, key).await
    }
    async fn sso_token(&self, digest: &str) -> Result<Option<SsoToken>> {
        portal::sso_token(self, digest).await
    }
    async fn platform_session(&self, digest: &str) -> Result<Option<PlatformSession>> {
        portal::platform_session(self, digest).await
    }
    async fn audit_entries(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        portal::audit_entries(self, limit).await
    }
    async fn parked_reports(&self, limit: usize) -> Result<Vec<ParkedReport>> {
        telnxo::parked_reports(self, limit).await
    }
    async fn subscription_of_workspace(&self, workspace_id: &str) -> Result<Option<Subscription>> {
        portal::subscription_of_workspace(self, workspace_id).await
    }
    async fn message_log_entry(&self, id: &str) -> Result<Option<MessageLogEntry>> {
        message_log::message_log_entry(self, id).await
    }
    async fn message_log(
        &self,
        workspace_id: &str,
        query: &MessageLogQuery,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<MessageLogEntry>> {
        message_log::message_log(self, workspace_id, query, cursor, limit).await
    }
    async fn message_log_of_queue(&self, queue_id: &str) -> Result<Vec<MessageLogEntry>> {
        message_log::message_log_of_queue(self, queue_id).await
    }
    async fn message_log_pending(&self, workspace_id: &str) -> Result<u64> {
        message_log::message_log_pending(self, workspace_id).await
    }
}

impl Writes for PgTxn {
    async fn insert_workspace(&mut self, workspace: &Workspace) -> Result<()> {
        tenants::insert_workspace(self, workspace).await
    }
    async fn put_workspace(&mut self, workspace: &Workspace) -> Result<()> {
        tenants::put_workspace(self, workspace).await
    }
    async fn insert_smtp_account(&mut self, account: &SmtpAccount) -> Result<()> {
        tenants::insert_smtp_account(self, account).await
    }
    async fn insert_api_key(&mut self, key: &ApiKey) -> Result<()> {
        tenants::insert_api_key(self, key).await
    }
    async fn put_api_key(&mut self, key: &ApiKey) -> Result<()> {
        tenants::put_api_key(self, key).await
    }
    async fn delete_api_key(&mut self, digest: &str) -> Result<bool> {
        tenants::delete_api_key(self, digest).await
    }
    async fn delete_smtp_account(&mut self, username: &str) -> Result<bool> {
        tenants::delete_smtp_account(self, username).await
    }
    async fn insert_sender_domain(&mut self, domain: &SenderDomain) -> Result<()> {
        tenants::insert_sender_domain(self, domain).await
    }
    async fn put_sender_domain(&mut self, domain: &SenderDomain) -> Result<()> {
        tenants::put_sender_domain(self, domain).await
    }
    async fn delete_sender_domain(&mut self, domain: &str) -> Result<bool> {
        tenants::delete_sender_domain(self, domain).await
    }
    async fn append_event(&mut self, event: &Event) -> Result<StoredEvent> {
        events::append_event(self, event).await
    }
    async fn append_events(&mut self, events: &[Event]) -> Result<Vec<StoredEvent>> {
        events::append_events(self, events).await
    }
    async fn set_cursor(&mut self, name: &str, value: u64) -> Result<()> {
        events::set_cursor(self, name, value).await
    }
    async fn put_endpoint(&mut self, endpoint: &Endpoint) -> Result<()> {
        events::put_endpoint(self, endpoint).await
    }
    async fn delete_endpoint(&mut self, id: &str) -> Result<bool> {
        events::delete_endpoint(self, id).await
    }
    async fn insert_delivery(&mut self, delivery: &mut Delivery) -> Result<()> {
        events::insert_delivery(self, delivery).await
    }
    async fn put_delivery(&mut self, delivery: &Delivery) -> Result<()> {
        events::put_delivery(self, delivery).await
    }
    async fn prune_events(&mut self, cutoff_ms: i64, limit: usize) -> Result<(u64, bool)> {
        events::prune_events(self, cutoff_ms, limit).await
    }
    async fn prune_deliveries(&mut self, cutoff_ms: i64, limit: usize) -> Result<(u64, bool)> {
        events::prune_deliveries(self, cutoff_ms, limit).await
    }
    async fn put_idempotency(&mut self, record: &IdempotencyRecord) -> Result<()> {
        tenants::put_idempotency(self, record).await
    }
    async fn delete_idempotency(&mut self, workspace_id: &str, key: &str) -> Result<()> {
        tenants::delete_idempotency(self, workspace_id, key).await
    }
    async fn prune_idempotency(&mut self, cutoff_ms: i64, limit: usize) -> Result<(u64, bool)> {
        tenants::prune_idempotency(self, cutoff_ms, limit).await
    }
    async fn put_suppression(&mut self, suppression: &Suppression) -> Result<()> {
        tenants::put_suppression(self, suppression).await
    }
    async fn delete_suppression(&mut self, workspace_id: &str, address: &str) -> Result<bool> {
        tenants::delete_suppression(self, workspace_id, address).await
    }
    async fn insert_client(&mut self, client: &Client) -> Result<()> {
        portal::insert_client(self, client).await
    }
    async fn put_client(&mut self, client: &Client) -> Result<()> {
        portal::put_client(self, client).await
    }
    async fn put_client_session(&mut self, session: &ClientSession) -> Result<()> {
        portal::put_client_session(self, session).await
    }
    async fn delete_client_session(&mut self, digest: &str) -> Result<bool> {
        portal::delete_client_session(self, digest).await
    }
    async fn put_subscription(&mut self, subscription: &Subscription) -> Result<()> {
        portal::put_subscription(self, subscription).await
    }
    async fn insert_invoice(&mut self, invoice: &Invoice) -> Result<()> {
        portal::insert_invoice(self, invoice).await
    }
    async fn put_invoice(&mut self, invoice: &Invoice) -> Result<()> {
        portal::put_invoice(self, invoice).await
    }
    async fn insert_payment(&mut self, payment: &Payment) -> Result<()> {
        portal::insert_payment(self, payment).await
    }
    async fn insert_credit_note(&mut self, note: &CreditNote) -> Result<()> {
        portal::insert_credit_note(self, note).await
    }
    async fn put_password_reset(&mut self, reset: &PasswordReset) -> Result<()> {
        portal::put_password_reset(self, reset).await
    }
    async fn delete_password_reset(&mut self, digest: &str) -> Result<bool> {
        portal::delete_password_reset(self, digest).await
    }
    async fn prune_client_tokens(&mut self, now_ms: i64, limit: usize) -> Result<(u64, bool)> {
        portal::prune_client_tokens(self, now_ms, limit).await
    }
    async fn queue_notice(&mut self, notice: &Notice) -> Result<u64> {
        portal::queue_notice(self, notice).await
    }
    async fn delete_notice(&mut self, seq: u64) -> Result<bool> {
        portal::delete_notice(self, seq).await
    }
    async fn put_telnxo_number(&mut self, number: &TelnxoNumber) -> Result<()> {
        telnxo::put_telnxo_number(self, number).await
    }
    async fn delete_telnxo_number(&mut self, number: &str) -> Result<bool> {
        telnxo::delete_telnxo_number(self, number).await
    }
    async fn put_telnxo_message(&mut self, message: &TelnxoMessage) -> Result<()> {
        telnxo::put_telnxo_message(self, message).await
    }
    async fn put_call(&mut self, call: &Call) -> Result<()> {
        telnxo::put_call(self, call).await
    }
    async fn put_carrier_id(
        &mut self,
        channel: Channel,
        carrier_id: &str,
        id: &str,
        part: u32,
    ) -> Result<()> {
        telnxo::put_carrier_id(self, channel, carrier_id, id, part).await
    }
    async fn set_whatsapp_window(
        &mut self,
        workspace_id: &str,
        customer: &str,
        at_ms: i64,
    ) -> Result<()> {
        telnxo::set_whatsapp_window(self, workspace_id, customer, at_ms).await
    }
    async fn put_sso_token(&mut self, token: &SsoToken) -> Result<()> {
        portal::put_sso_token(self, token).await
    }
    async fn put_platform_session(&mut self, session: &PlatformSession) -> Result<()> {
        portal::put_platform_session(self, session).await
    }
    async fn delete_platform_session(&mut self, digest: &str) -> Result<bool> {
        portal::delete_platform_session(self, digest).await
    }
    async fn append_audit(&mut self, entry: &AuditEntry) -> Result<()> {
        portal::append_audit(self, entry).await
    }
    async fn put_inbound_part(&mut self, key: &str, seq: u8, body: &str) -> Result<()> {
        telnxo::put_inbound_part(self, key, seq, body).await
    }
    async fn delete_inbound_parts(&mut self, key: &str) -> Result<()> {
        telnxo::delete_inbound_parts(self, key).await
    }
    async fn put_parked_report(&mut self, report: &ParkedReport) -> Result<()> {
        telnxo::put_parked_report(self, report).await
    }
    async fn delete_parked_report(&mut self, id: &str) -> Result<bool> {
        telnxo::delete_parked_report(self, id).await
    }
    async fn add_telnxo_usage(&mut self, workspace_id: &str, counter: &str, n: u64) -> Result<u64> {
        telnxo::add_telnxo_usage(self, workspace_id, counter, n).await
    }
    async fn lease_deliveries(
        &mut self,
        endpoint_id: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        coordination::lease_deliveries(self, endpoint_id, holder, now_ms, until_ms, limit).await
    }
    async fn release_leases(&mut self, holder: &str, now_ms: i64) -> Result<u64> {
        coordination::release_leases(self, holder, now_ms).await
    }
    async fn claim_lease(
        &mut self,
        name: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool> {
        coordination::claim_lease(self, name, holder, now_ms, until_ms).await
    }
    async fn claim_quota(
        &mut self,
        counter: &str,
        day: i64,
        cap: u64,
        want: u64,
    ) -> Result<(u64, u64)> {
        coordination::claim_quota(self, counter, day, cap, want).await
    }
    async fn put_message_log(&mut self, entries: &[MessageLogEntry]) -> Result<()> {
        message_log::put_message_log(self, entries).await
    }
    async fn prune_message_log(
        &mut self,
        cutoff_ms: i64,
        stale_before_ms: i64,
        limit: usize,
    ) -> Result<(u64, bool)> {
        message_log::prune_message_log(self, cutoff_ms, stale_before_ms, limit).await
    }
}
