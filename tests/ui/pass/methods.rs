use observe::observe;

struct Orders {
    names: Vec<String>,
}

impl Orders {
    #[observe]
    fn new() -> Self {
        Orders { names: Vec::new() }
    }

    #[observe(handler)]
    fn first(&self) -> Option<&str> {
        self.names.first().map(String::as_str)
    }

    #[observe]
    fn push(&mut self, name: &str) -> &mut Self {
        self.names.push(name.to_owned());
        self
    }

    #[observe]
    fn name_mut(&mut self, i: usize) -> &mut String {
        &mut self.names[i]
    }

    #[observe(task)]
    fn into_names(self) -> Vec<String> {
        self.names
    }

    #[observe(handler)]
    async fn count(&self) -> usize {
        self.names.len()
    }
}

fn main() {
    let mut orders = Orders::new();
    orders.push("a").push("b");
    orders.name_mut(0).push('!');
    assert_eq!(orders.first(), Some("a!"));
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_eq!(runtime.block_on(orders.count()), 2);
    assert_eq!(orders.into_names().len(), 2);
}
