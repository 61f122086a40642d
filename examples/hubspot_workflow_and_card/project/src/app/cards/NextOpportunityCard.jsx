// SPE: my work — an app card on deal records (HubSpot UI extension, React).
//
// It shows the opportunities SPE has released to the viewing user and a "Next
// opportunity" button. Both call spe serve through hubspot.fetch, which cannot send
// headers: HubSpot signs each request with the app's client secret (v3), and spe serve
// checks that signature instead of a bearer token. The user is named by their HubSpot
// user id; spe serve finds the SPE member whose owner record carries that user id.
import React, { useCallback, useEffect, useState } from "react";
import {
  Alert,
  Button,
  Divider,
  EmptyState,
  Flex,
  Link,
  LoadingSpinner,
  Text,
  hubspot,
} from "@hubspot/ui-extensions";

// must be listed in permittedUrls.fetch (app-hsmeta.json)
const SPE = "https://spe.example.com";

hubspot.extend(({ context }) => <MyWork context={context} />);

const MyWork = ({ context }) => {
  const query = `userId=${encodeURIComponent(context.user.id)}`;
  const [card, setCard] = useState(null);
  const [note, setNote] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  const call = useCallback(
    async (path, method) => {
      const response = await hubspot.fetch(`${SPE}${path}?${query}`, { method });
      const body = await response.json();
      if (!response.ok) {
        throw new Error(`${body.error} ${body.fix || ""}`);
      }
      return body;
    },
    [query]
  );

  useEffect(() => {
    call("/hubspot/card", "GET").then(setCard).catch((e) => setError(e.message));
  }, [call]);

  const next = async () => {
    setBusy(true);
    setError(null);
    try {
      const reply = await call("/hubspot/card/pull", "POST");
      setCard(reply);
      setNote(reply.released.length ? `Released: ${reply.released[0].id}` : reply.reason);
    } catch (e) {
      setError(e.message);
    } finally {
      setBusy(false);
    }
  };

  if (error) {
    return <Alert title="SPE" variant="error">{error}</Alert>;
  }
  if (!card) {
    return <LoadingSpinner label="Asking SPE" />;
  }
  return (
    <Flex direction="column" gap="small">
      <Text format={{ fontWeight: "bold" }}>
        {card.name}: {card.opportunities.length} held · queue {card.queue.level}/
        {card.queue.target} ({card.queue.zone})
      </Text>
      {card.opportunities.length === 0 ? (
        <EmptyState title="Nothing held" layout="vertical" reverseOrder={true}>
          <Text>Pull your next opportunity from the queue.</Text>
        </EmptyState>
      ) : (
        card.opportunities.map((o) => (
          <Text key={o.id}>
            {o.dealId ? (
              <Link href={`/contacts/${context.portal.id}/record/0-3/${o.dealId}`}>{o.id}</Link>
            ) : (
              o.id
            )}{" "}
            · {o.accountId} · yours until {o.leaseExpiresAt}
          </Text>
        ))
      )}
      <Divider />
      <Button variant="primary" onClick={next} disabled={busy}>
        Next opportunity
      </Button>
      {note && <Text variant="microcopy">{note}</Text>}
    </Flex>
  );
};
