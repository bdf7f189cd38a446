use observe::observe;

#[observe(handler)]
mod api {
    pub fn list() -> Vec<u32> {
        helpers::sorted(vec![3, 1, 2])
    }

    #[observe::observe(task, name = "api.rebuild")]
    pub fn rebuild() {}

    #[observe::skip]
    pub fn health() -> &'static str {
        "ok"
    }

    pub const fn version() -> u32 {
        1
    }

    pub async fn fetch(id: u64) -> Result<u64, String> {
        Ok(id)
    }

    pub mod helpers {
        pub fn sorted(mut v: Vec<u32>) -> Vec<u32> {
            v.sort();
            v
        }
    }

    pub trait Describe {
        fn name(&self) -> &'static str;
        // A default method has a body: observed like the module's other functions.
        fn describe(&self) -> String {
            format!("the {}", self.name())
        }
    }

    pub struct Shop;

    impl Describe for Shop {
        fn name(&self) -> &'static str {
            "shop"
        }
    }
}

struct OrderService {
    orders: Vec<u32>,
}

#[observe(handler, level = "info")]
impl OrderService {
    fn count(&self) -> usize {
        self.orders.len()
    }

    fn add(&mut self, order: u32) -> &mut Self {
        self.orders.push(order);
        self
    }

    #[observe::skip]
    fn internal(&self) -> bool {
        true
    }
}

trait Store {
    fn get(&self) -> u32;
}

#[observe(task)]
impl Store for OrderService {
    fn get(&self) -> u32 {
        self.orders[0]
    }
}

fn main() {
    assert_eq!(api::list(), vec![1, 2, 3]);
    api::rebuild();
    assert_eq!(api::health(), "ok");
    const V: u32 = api::version();
    assert_eq!(V, 1);
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_eq!(runtime.block_on(api::fetch(4)), Ok(4));
    let mut service = OrderService { orders: vec![] };
    service.add(7).add(8);
    assert_eq!(service.count(), 2);
    assert!(service.internal());
    assert_eq!(service.get(), 7);

    let kind_of = |suffix: &str| observe::sites().find(|s| s.name().ends_with(suffix)).map(|s| s.kind());
    assert_eq!(kind_of("api::list"), Some(observe::Kind::Handler));
    assert_eq!(kind_of("helpers::sorted"), Some(observe::Kind::Handler), "nested modules too");
    assert_eq!(kind_of("api.rebuild"), Some(observe::Kind::Task), "the inner attribute wins");
    assert_eq!(kind_of("::count"), Some(observe::Kind::Handler));
    assert_eq!(kind_of("::get"), Some(observe::Kind::Task));
    assert!(kind_of("::health").is_none() && kind_of("::internal").is_none(), "skipped");
    assert!(kind_of("::version").is_none(), "a const fn cannot be observed and is left alone");
    use api::Describe as _;
    assert_eq!(api::Shop.describe(), "the shop");
    assert_eq!(kind_of("::describe"), Some(observe::Kind::Handler), "a trait's default method");
}
